-- reconcile: one row per invariant of a run's outputs (SPEC §9), with
-- passed, how many items were checked, how many failed, and the first
-- failing item as an example. `ratecore report reconcile --check` exits 3
-- when any row fails.
--
--   balance_rollforward    per tenant and ledger month: opening + funded (fund,
--                          recharge) - spent (debit) - forfeited (expire) = closing,
--                          opening and closing being the balance after the last
--                          entry before / in the month
--   ledger_sequence        every ledger entry: seq follows the tenant's previous
--                          entry's seq by 1 (from 1), and balance_after = the
--                          previous balance_after + amount
--   ledger_matches_state   per tenant of state/: its last ledger seq and balance
--                          are the state's (catches a lost last entry)
--   charges_debited        per call charged or debited: the rated charge equals
--                          minus the sum of its debit entries
--   pools_within_size      per pool and month: used_seconds <= size_seconds
--   pool_use_matches_calls per tenant and pool, over all months: the pools'
--                          used_seconds sum to the rated calls' pool_seconds
--   usage_id_unique        every rated usage_id once, over all months
--   rows_accounted         every data row of every CDR file a run read (inputs/):
--                          per (file, row), rated/ and rejects/ hold it as many
--                          times as runs read it (once per read), and nothing
--                          else; a re-rate's replay keeps where a CDR was read.
--                          Over all months and tenants (not checked with $tenant:
--                          an input row may have no tenant)
--   duplicates_named       every `duplicate` reject names a rated usage_id
--
-- Together these say every input row, call and cent is accounted for.
-- Parameters: $month (YYYY-MM: month-scoped checks keep that month; the
-- all-months ones are unchanged), $tenant.
WITH
entries AS NOT MATERIALIZED (
    SELECT * FROM ledger WHERE $tenant IS NULL OR tenant_id = $tenant
),
calls AS NOT MATERIALIZED (
    SELECT * FROM rated WHERE $tenant IS NULL OR tenant_id = $tenant
),
month_sums AS (
    SELECT tenant_id, month,
           arg_max(balance_after, seq) AS closing,
           coalesce(sum(amount) FILTER (kind IN ('fund', 'recharge')), 0) AS funded,
           coalesce(-sum(amount) FILTER (kind = 'debit'), 0) AS spent,
           coalesce(-sum(amount) FILTER (kind = 'expire'), 0) AS forfeited,
           coalesce(sum(amount) FILTER (kind = 'recharge_failed'), 0) AS failed_amount
    FROM entries GROUP BY tenant_id, month
),
rollforward AS (
    SELECT *, coalesce(lag(closing) OVER (PARTITION BY tenant_id ORDER BY month), 0) AS opening
    FROM month_sums
),
chain AS (
    SELECT tenant_id, month, seq, amount, balance_after,
           lag(seq) OVER w AS prev_seq, lag(balance_after) OVER w AS prev_balance
    FROM entries WINDOW w AS (PARTITION BY tenant_id ORDER BY seq, time)
),
last_entries AS (
    SELECT tenant_id, max(seq) AS seq, arg_max(balance_after, seq) AS balance
    FROM entries GROUP BY tenant_id
),
state_vs_ledger AS (
    SELECT coalesce(s.tenant_id, l.tenant_id) AS tenant_id,
           s.seq AS state_seq, s.balance AS state_balance,
           coalesce(l.seq, 0) AS ledger_seq,
           CAST(coalesce(l.balance, 0) * 1000000 AS BIGINT) AS ledger_balance
    FROM (SELECT * FROM state_tenants WHERE $tenant IS NULL OR tenant_id = $tenant) AS s
    FULL JOIN last_entries AS l USING (tenant_id)
    WHERE EXISTS (SELECT 1 FROM state_tenants)
),
debits AS (
    SELECT usage_id, min(month) AS month, sum(amount) AS amount
    FROM entries WHERE kind = 'debit' GROUP BY usage_id
),
charges AS (
    SELECT coalesce(c.usage_id, d.usage_id) AS usage_id, coalesce(c.month, d.month) AS month,
           coalesce(c.charge, 0) AS charge, coalesce(-d.amount, 0) AS debited
    FROM (SELECT usage_id, month, charge FROM calls WHERE charge <> 0) AS c
    FULL JOIN debits AS d USING (usage_id)
),
pool_rows AS (
    SELECT * FROM pools WHERE $tenant IS NULL OR tenant_id = $tenant
),
pool_use AS (
    SELECT coalesce(p.tenant_id, c.tenant_id) AS tenant_id, coalesce(p.pool, c.pool) AS pool,
           coalesce(p.used, 0) AS pools_used, coalesce(c.used, 0) AS calls_used
    FROM (SELECT tenant_id, pool, sum(used_seconds) AS used FROM pool_rows GROUP BY ALL) AS p
    FULL JOIN (SELECT tenant_id, pool, sum(pool_seconds) AS used FROM calls
               WHERE pool_seconds > 0 GROUP BY ALL) AS c USING (tenant_id, pool)
),
reject_rows AS (
    SELECT * FROM rejects WHERE $tenant IS NULL OR tenant_id = $tenant
),
origin_counts AS (
    SELECT "file", "row", count(*) AS n
    FROM (SELECT "file", "row" FROM rated UNION ALL SELECT "file", "row" FROM rejects)
    WHERE $tenant IS NULL
    GROUP BY ALL
),
origin_reads AS (
    -- how many reads each (file, row) has: the runs that read at least `row` rows of it
    SELECT o."file", o."row", o.n, count(i."file") AS reads
    FROM origin_counts AS o
    LEFT JOIN inputs AS i ON i."file" = o."file" AND o."row" BETWEEN 1 AND i."rows"
    GROUP BY ALL
),
file_rows AS (
    SELECT coalesce(i."file", o."file") AS "file", coalesce(i.rows, 0) AS expected,
           coalesce(o.accounted, 0) AS accounted, coalesce(o.extra, 0) AS extra,
           o.example
    FROM (SELECT "file", sum("rows") AS "rows" FROM inputs WHERE $tenant IS NULL GROUP BY ALL)
         AS i
    FULL JOIN (SELECT "file", sum(least(n, reads)) AS accounted,
                      sum(greatest(n - reads, 0)) AS extra,
                      min(coalesce("file", '(no file)') || ' row ' || coalesce("row", 0)
                          || ': rated or rejected ' || n || ' times, read ' || reads
                          || ' times') FILTER (n <> reads) AS example
               FROM origin_reads GROUP BY ALL) AS o USING ("file")
),
duplicate_orphans AS (
    SELECT * FROM reject_rows AS r
    WHERE r.reason = 'duplicate'
      AND NOT EXISTS (SELECT 1 FROM calls AS c WHERE c.usage_id = r.usage_id)
),
results AS (
    SELECT 1 AS k, 'balance_rollforward' AS invariant, count(*) AS checked,
           count(*) FILTER (opening + funded - spent - forfeited + failed_amount <> closing)
               AS failed,
           min(tenant_id || ' ' || month || ': opening ' || opening || ' + funded ' || funded
               || ' - spent ' || spent || ' - forfeited ' || forfeited || ' <> closing '
               || closing)
               FILTER (opening + funded - spent - forfeited + failed_amount <> closing)
               AS example
    FROM rollforward WHERE $month IS NULL OR month = $month
    UNION ALL
    SELECT 2, 'ledger_sequence', count(*),
           count(*) FILTER (seq <> coalesce(prev_seq, 0) + 1
                            OR balance_after <> coalesce(prev_balance, 0) + amount),
           min(tenant_id || ' seq ' || seq || ' after seq ' || coalesce(prev_seq, 0)
               || ': balance ' || coalesce(prev_balance, 0) || ' + ' || amount || ' -> '
               || balance_after)
               FILTER (seq <> coalesce(prev_seq, 0) + 1
                       OR balance_after <> coalesce(prev_balance, 0) + amount)
    FROM chain WHERE $month IS NULL OR month = $month
    UNION ALL
    SELECT 3, 'ledger_matches_state', count(*),
           count(*) FILTER (state_seq IS DISTINCT FROM ledger_seq
                            OR state_balance IS DISTINCT FROM ledger_balance),
           min(tenant_id || ': state seq ' || coalesce(CAST(state_seq AS VARCHAR), 'none')
               || ', balance ' || coalesce(CAST(state_balance AS VARCHAR), 'none')
               || ' (micro); ledger seq ' || ledger_seq || ', balance ' || ledger_balance)
               FILTER (state_seq IS DISTINCT FROM ledger_seq
                       OR state_balance IS DISTINCT FROM ledger_balance)
    FROM state_vs_ledger
    UNION ALL
    SELECT 4, 'charges_debited', count(*), count(*) FILTER (charge <> debited),
           min(usage_id || ': charge ' || charge || ', debited ' || debited)
               FILTER (charge <> debited)
    FROM charges WHERE $month IS NULL OR month = $month
    UNION ALL
    SELECT 5, 'pools_within_size', count(*), count(*) FILTER (used_seconds > size_seconds),
           min(tenant_id || ' ' || month || ' ' || pool || ': used ' || used_seconds
               || ' s > size ' || size_seconds || ' s')
               FILTER (used_seconds > size_seconds)
    FROM pool_rows WHERE $month IS NULL OR month = $month
    UNION ALL
    SELECT 6, 'pool_use_matches_calls', count(*), count(*) FILTER (pools_used <> calls_used),
           min(tenant_id || ' ' || pool || ': pools ' || pools_used || ' s, calls '
               || calls_used || ' s') FILTER (pools_used <> calls_used)
    FROM pool_use
    UNION ALL
    SELECT 7, 'usage_id_unique', sum(n), sum(n - 1),
           min(usage_id || ' rated ' || n || ' times') FILTER (n > 1)
    FROM (SELECT usage_id, count(*) AS n FROM calls GROUP BY usage_id)
    UNION ALL
    SELECT 8, 'rows_accounted', sum(expected),
           sum(expected - accounted + extra),
           coalesce(min(example),
                    min("file" || ': ' || (expected - accounted) || ' of ' || expected
                        || ' input rows neither rated nor rejected')
                        FILTER (accounted < expected))
    FROM file_rows
    UNION ALL
    SELECT 9, 'duplicates_named',
           (SELECT count(*) FROM reject_rows WHERE reason = 'duplicate'),
           count(*), min("file" || ' row ' || "row" || ': duplicate of ' || usage_id
                         || ', which is not rated')
    FROM duplicate_orphans
)
SELECT invariant,
       coalesce(failed, 0) = 0              AS passed,
       CAST(coalesce(checked, 0) AS BIGINT) AS checked,
       CAST(coalesce(failed, 0) AS BIGINT)  AS failed,
       example
FROM results ORDER BY k
