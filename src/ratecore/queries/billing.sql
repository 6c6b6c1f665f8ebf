-- billing: the monthly statement of each tenant, one row per statement line.
--
-- Sections, in order (line numbers the rows within a tenant-month):
--   balance    opening balance  the balance after the tenant's last ledger entry before the month
--   funds      funds added      one line per funding, with its reference (EA or PO number)
--   recharges  auto-recharge    successful recharges: count and amount
--   recharges  recharge failed  failed attempts: count (amount 0)
--   spend      calls charged to credits, per capability and call type: calls,
--              minutes charged, amount (the call's debit entries, negative)
--   forfeited  credits expired  lots forfeited: count and amount (negative)
--   balance    closing balance  the balance after the last ledger entry up to the month's end
--   minutes    included in plan (per SKU of the pool), charged to credits,
--              cut or blocked: calls and minutes; amount NULL
--
-- Amounts are signed as they move the balance, so for every tenant-month
-- opening + the amounts of funds, recharges, spend and forfeited = closing.
-- Money lines follow the ledger month (the instant an entry was booked: a
-- late call is debited at its tenant's point); minutes lines follow the
-- month the calls started. A statement exists for every tenant-month with
-- a call, and for every month from a tenant's first ledger entry on
-- (within the months that have any entry or call, or $month).
-- currency is the tenant's, from tenants.csv as the last run kept it in
-- state/ (outputs of older runs: as its rated calls show it).
-- Parameters: $month (YYYY-MM or NULL for every month), $tenant (or NULL).
WITH
entries AS NOT MATERIALIZED (
    SELECT * FROM ledger WHERE $tenant IS NULL OR tenant_id = $tenant
),
calls AS NOT MATERIALIZED (
    SELECT * FROM rated WHERE $tenant IS NULL OR tenant_id = $tenant
),
months AS (
    SELECT DISTINCT month FROM (
        SELECT month FROM entries UNION ALL SELECT month FROM calls
        UNION ALL SELECT $month WHERE $month IS NOT NULL)
    WHERE month IS NOT NULL AND ($month IS NULL OR month = $month)
),
currencies AS (
    SELECT tenant_id, coalesce(s.currency, c.currency) AS currency
    FROM (SELECT tenant_id, currency FROM state_tenants WHERE currency IS NOT NULL) AS s
    FULL JOIN (SELECT tenant_id, min(currency) AS currency
               FROM calls WHERE currency IS NOT NULL GROUP BY tenant_id) AS c USING (tenant_id)
),
month_end AS (      -- each tenant's balance at the end of each month it has entries in
    SELECT tenant_id, month, arg_max(balance_after, seq) AS balance
    FROM entries GROUP BY tenant_id, month
),
tenant_months AS (
    SELECT f.tenant_id, m.month
    FROM (SELECT tenant_id, min(month) AS first FROM entries GROUP BY tenant_id) AS f
    JOIN months AS m ON m.month >= f.first
    UNION
    SELECT DISTINCT tenant_id, month FROM calls WHERE month IN (SELECT month FROM months)
),
balances AS (
    SELECT tm.tenant_id, tm.month,
           coalesce(o.balance, 0) AS opening,
           coalesce(c.balance, o.balance, 0) AS closing
    FROM tenant_months AS tm
    ASOF LEFT JOIN month_end AS o ON tm.tenant_id = o.tenant_id AND tm.month > o.month
    LEFT JOIN (SELECT tenant_id, month, balance FROM month_end) AS c
        ON c.tenant_id = tm.tenant_id AND c.month = tm.month
),
month_entries AS (
    SELECT * FROM entries WHERE month IN (SELECT month FROM months)
),
debits AS (         -- one row per call debited: its entries summed
    SELECT tenant_id, month, usage_id, sum(amount) AS amount, count(*) AS entries
    FROM month_entries WHERE kind = 'debit' GROUP BY tenant_id, month, usage_id
),
month_calls AS (
    SELECT * FROM calls WHERE month IN (SELECT month FROM months)
),
lines AS (
    SELECT tenant_id, month, 1 AS part, 'balance' AS section, 'opening balance' AS item,
           NULL AS capability, NULL AS call_type, NULL AS reference,
           CAST(NULL AS TIMESTAMPTZ) AS time, NULL AS count, NULL AS seconds, opening AS amount
    FROM balances
    UNION ALL
    SELECT tenant_id, month, 2, 'funds', 'funds added', NULL, NULL, reference, time, 1, NULL,
           amount
    FROM month_entries WHERE kind = 'fund'
    UNION ALL
    SELECT tenant_id, month, 3, 'recharges', 'auto-recharge', NULL, NULL, NULL, NULL, count(*),
           NULL, sum(amount)
    FROM month_entries WHERE kind = 'recharge' GROUP BY tenant_id, month
    UNION ALL
    SELECT tenant_id, month, 4, 'recharges', 'recharge failed', NULL, NULL, NULL, NULL,
           count(*), NULL, sum(amount)
    FROM month_entries WHERE kind = 'recharge_failed' GROUP BY tenant_id, month
    UNION ALL
    SELECT d.tenant_id, d.month, 5, 'spend', 'calls charged to credits', c.capability,
           c.call_type, NULL, NULL, count(*), sum(c.charged_seconds), sum(d.amount)
    FROM debits AS d LEFT JOIN calls AS c USING (usage_id)
    GROUP BY d.tenant_id, d.month, c.capability, c.call_type
    UNION ALL
    SELECT tenant_id, month, 6, 'forfeited', 'credits expired', NULL, NULL, NULL, NULL,
           count(*), NULL, sum(amount)
    FROM month_entries WHERE kind = 'expire' GROUP BY tenant_id, month
    UNION ALL
    SELECT tenant_id, month, 7, 'balance', 'closing balance', NULL, NULL, NULL, NULL, NULL,
           NULL, closing
    FROM balances
    UNION ALL
    SELECT tenant_id, month, 8, 'minutes', 'included in plan', split_part(pool, ':', 1), NULL,
           NULL, NULL, count(*), sum(pool_seconds), NULL
    FROM month_calls WHERE pool_seconds > 0 GROUP BY tenant_id, month, split_part(pool, ':', 1)
    UNION ALL
    SELECT tenant_id, month, 9, 'minutes', 'charged to credits', NULL, NULL, NULL, NULL,
           count(*), sum(charged_seconds), NULL
    FROM month_calls WHERE charged_seconds > 0 GROUP BY tenant_id, month
    UNION ALL
    SELECT tenant_id, month, 10, 'minutes', 'cut or blocked', NULL, NULL, NULL, NULL,
           count(*), sum(unbilled_seconds), NULL
    FROM month_calls WHERE unbilled_seconds > 0 GROUP BY tenant_id, month
)
SELECT
    l.tenant_id,
    l.month,
    cur.currency,
    CAST(row_number() OVER (PARTITION BY l.tenant_id, l.month
                            ORDER BY l.part, l.capability, l.call_type, l.time, l.reference)
         AS BIGINT)                                                     AS line,
    l.section,
    l.item,
    CAST(l.capability AS VARCHAR)                                       AS capability,
    CAST(l.call_type AS VARCHAR)                                        AS call_type,
    CAST(l.reference AS VARCHAR)                                        AS reference,
    l.time,
    CAST(l.count AS BIGINT)                                             AS count,
    CAST((l.seconds * 100 + 30) // 60 * 0.01 AS DECIMAL(18, 2))         AS minutes,
    CAST(l.amount AS DECIMAL(18, 6))                                    AS amount
FROM lines AS l
LEFT JOIN currencies AS cur USING (tenant_id)
ORDER BY l.tenant_id, l.month, line
