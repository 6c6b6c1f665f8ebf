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
read_files AS (
    SELECT "file", row_number() OVER (ORDER BY "file") AS fid
    FROM (SELECT DISTINCT "file" FROM inputs WHERE $tenant IS NULL)
),
read_spans AS (
    -- per file, the row ranges the same number of runs read: runs that
    -- read 3 and 5 rows of it read rows 1-3 twice and rows 4-5 once
    SELECT fid, coalesce(lag("rows") OVER w, 0) + 1 AS lo, "rows" AS hi,
           count(*) OVER (PARTITION BY fid) - row_number() OVER w + 1 AS reads
    FROM inputs JOIN read_files USING ("file")
    WINDOW w AS (PARTITION BY fid ORDER BY "rows")
),
origins AS NOT MATERIALIZED (
    SELECT o."file", o."row", f.fid
    FROM (SELECT "file", "row" FROM rated UNION ALL SELECT "file", "row" FROM rejects) AS o
    LEFT JOIN read_files AS f USING ("file")
    WHERE $tenant IS NULL
),
origin_counts AS (
    -- (file, row) packed in one BIGINT: grouping 20M rows on it took 1.3 s,
    -- on (file, row) 3.3 s
    SELECT fid * 1099511627776 + "row" AS key, count(*) AS n
    FROM origins WHERE fid IS NOT NULL AND "row" BETWEEN 1 AND 1099511627775
    GROUP BY ALL
),
origin_reads AS (
    SELECT c.key >> 40 AS fid, c.key & 1099511627775 AS "row", c.n, coalesce(s.reads, 0) AS reads
    FROM origin_counts AS c
    LEFT JOIN read_spans AS s
           ON s.fid = c.key >> 40 AND (c.key & 1099511627775) BETWEEN s.lo AND s.hi
),
file_rows AS (
    SELECT f."file", coalesce(e.expected, 0) AS expected, coalesce(o.accounted, 0) AS accounted,
           coalesce(o.extra, 0) AS extra, o.bad_row, o.bad_n, o.bad_reads
    FROM read_files AS f
    LEFT JOIN (SELECT fid, sum("rows") AS expected FROM inputs JOIN read_files USING ("file")
               GROUP BY fid) AS e USING (fid)
    LEFT JOIN (SELECT fid, sum(least(n, reads)) AS accounted,
                      sum(greatest(n - reads, 0)) AS extra,
                      min("row") FILTER (n <> reads) AS bad_row,
                      arg_min(n, "row") FILTER (n <> reads) AS bad_n,
                      arg_min(reads, "row") FILTER (n <> reads) AS bad_reads
               FROM origin_reads GROUP BY fid) AS o USING (fid)
),
stray_origins AS (
    -- rated or rejected rows of no file a run read (or of no row of it)
    SELECT count(*) AS n,
           min(coalesce("file", '(no file)') || ' row ' || coalesce(CAST("row" AS VARCHAR), '?')
               || ': rated or rejected, but no run read it') AS example
    FROM origins WHERE fid IS NULL OR "row" NOT BETWEEN 1 AND 1099511627775
),
duplicate_orphans AS (
    -- the ids of duplicate rejects first, so that the 20M rated ids are only probed
    SELECT r.* FROM (SELECT * FROM reject_rows WHERE reason = 'duplicate') AS r
    WHERE r.usage_id NOT IN (SELECT usage_id FROM calls
                             WHERE usage_id IN (SELECT usage_id FROM reject_rows
                                                WHERE reason = 'duplicate'))
),
-- An example is built only for failing items (CASE, not FILTER: FILTER still
-- formats every row's text, which took seconds over 20M calls)
results AS (
    SELECT 1 AS k, 'balance_rollforward' AS invariant, count(*) AS checked,
           count(*) FILTER (opening + funded - spent - forfeited + failed_amount <> closing)
               AS failed,
           min(CASE WHEN opening + funded - spent - forfeited + failed_amount <> closing
                    THEN tenant_id || ' ' || month || ': opening ' || opening || ' + funded '
                         || funded || ' - spent ' || spent || ' - forfeited ' || forfeited
                         || ' <> closing ' || closing END) AS example
    FROM rollforward WHERE $month IS NULL OR month = $month
    UNION ALL
    SELECT 2, 'ledger_sequence', count(*),
           count(*) FILTER (seq <> coalesce(prev_seq, 0) + 1
                            OR balance_after <> coalesce(prev_balance, 0) + amount),
           min(CASE WHEN seq <> coalesce(prev_seq, 0) + 1
                         OR balance_after <> coalesce(prev_balance, 0) + amount
                    THEN tenant_id || ' seq ' || seq || ' after seq ' || coalesce(prev_seq, 0)
                         || ': balance ' || coalesce(prev_balance, 0) || ' + ' || amount
                         || ' -> ' || balance_after END)
    FROM chain WHERE $month IS NULL OR month = $month
    UNION ALL
    SELECT 3, 'ledger_matches_state', count(*),
           count(*) FILTER (state_seq IS DISTINCT FROM ledger_seq
                            OR state_balance IS DISTINCT FROM ledger_balance),
           min(CASE WHEN state_seq IS DISTINCT FROM ledger_seq
                         OR state_balance IS DISTINCT FROM ledger_balance
                    THEN tenant_id || ': state seq '
                         || coalesce(CAST(state_seq AS VARCHAR), 'none') || ', balance '
                         || coalesce(CAST(state_balance AS VARCHAR), 'none')
                         || ' (micro); ledger seq ' || ledger_seq || ', balance '
                         || ledger_balance END)
    FROM state_vs_ledger
    UNION ALL
    SELECT 4, 'charges_debited', count(*), count(*) FILTER (charge <> debited),
           min(CASE WHEN charge <> debited
                    THEN usage_id || ': charge ' || charge || ', debited ' || debited END)
    FROM charges WHERE $month IS NULL OR month = $month
    UNION ALL
    SELECT 5, 'pools_within_size', count(*), count(*) FILTER (used_seconds > size_seconds),
           min(CASE WHEN used_seconds > size_seconds
                    THEN tenant_id || ' ' || month || ' ' || pool || ': used ' || used_seconds
                         || ' s > size ' || size_seconds || ' s' END)
    FROM pool_rows WHERE $month IS NULL OR month = $month
    UNION ALL
    SELECT 6, 'pool_use_matches_calls', count(*), count(*) FILTER (pools_used <> calls_used),
           min(CASE WHEN pools_used <> calls_used
                    THEN tenant_id || ' ' || pool || ': pools ' || pools_used || ' s, calls '
                         || calls_used || ' s' END)
    FROM pool_use
    UNION ALL
    SELECT 7, 'usage_id_unique', sum(n), sum(n - 1),
           min(CASE WHEN n > 1 THEN usage_id || ' rated ' || n || ' times' END)
    FROM (SELECT usage_id, count(*) AS n FROM calls GROUP BY usage_id)
    UNION ALL
    SELECT 8, 'rows_accounted', sum(expected),
           sum(expected - accounted + extra) + (SELECT n FROM stray_origins),
           coalesce(min(CASE WHEN bad_row IS NOT NULL
                             THEN "file" || ' row ' || bad_row || ': rated or rejected '
                                  || bad_n || ' times, read ' || bad_reads || ' times' END),
                    min(CASE WHEN accounted < expected
                             THEN "file" || ': ' || (expected - accounted) || ' of '
                                  || expected || ' input rows neither rated nor rejected' END),
                    (SELECT example FROM stray_origins))
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
