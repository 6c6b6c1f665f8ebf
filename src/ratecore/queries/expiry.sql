-- expiry: credit lots that expire soon, and what was forfeited per month.
--
-- Two sections, both from the ledger (a lot is the fund or recharge entry
-- that created it; it expires 12 calendar months after it was booked, the
-- day clamped to the month's end, SPEC §6):
--   expiring   one row per lot whose expiry falls in [$date, $date + $days days)
--              (UTC days): amount, remaining at the start of $date (amount
--              less what was drawn from it before), days_left, and forfeited
--              when the ledger already holds its expiry.
--   forfeited  one row per tenant and month with expiries: lots forfeited
--              and the amount (positive); $month, if given, keeps that month.
-- currency is the tenant's, from tenants.csv as the last run kept it in
-- state/ (outputs of older runs: as its rated calls show it).
-- Parameters: $date (DATE), $days (INTEGER), $month (YYYY-MM or NULL), $tenant.
WITH
entries AS NOT MATERIALIZED (
    SELECT * FROM ledger WHERE $tenant IS NULL OR tenant_id = $tenant
),
currencies AS (
    SELECT tenant_id, coalesce(s.currency, c.currency) AS currency
    FROM (SELECT tenant_id, currency FROM state_tenants WHERE currency IS NOT NULL) AS s
    FULL JOIN (SELECT tenant_id, min(currency) AS currency
               FROM rated WHERE currency IS NOT NULL AND ($tenant IS NULL OR tenant_id = $tenant) GROUP BY tenant_id) AS c USING (tenant_id)
),
bounds AS (
    SELECT CAST($date AS TIMESTAMPTZ) AS since,
           CAST($date AS TIMESTAMPTZ) + to_days(CAST($days AS INTEGER)) AS until
),
lots AS (
    SELECT tenant_id, lot_id, kind, reference, time AS funded_at,
           time + INTERVAL 12 MONTH AS expires_at, amount
    FROM entries WHERE kind IN ('fund', 'recharge')
),
drawn AS (          -- per lot: drawn before the window, and forfeited at expiry
    SELECT e.tenant_id, e.lot_id,
           sum(e.amount) FILTER (e.kind = 'debit' AND e.time < b.since) AS drawn,
           sum(e.amount) FILTER (e.kind = 'expire') AS forfeited
    FROM entries AS e, bounds AS b
    WHERE e.kind IN ('debit', 'expire') AND e.lot_id IS NOT NULL
    GROUP BY e.tenant_id, e.lot_id
),
expiring AS (
    SELECT 'expiring' AS section, l.tenant_id, strftime(l.expires_at, '%Y-%m') AS month,
           l.lot_id, l.kind, l.reference, l.funded_at, l.expires_at,
           CAST(date_diff('day', CAST(b.since AS DATE), CAST(l.expires_at AS DATE)) AS BIGINT)
               AS days_left,
           l.amount,
           l.amount + coalesce(d.drawn, 0) AS remaining,
           -d.forfeited AS forfeited,
           CAST(NULL AS BIGINT) AS lots
    FROM lots AS l CROSS JOIN bounds AS b
    LEFT JOIN drawn AS d USING (tenant_id, lot_id)
    WHERE l.expires_at >= b.since AND l.expires_at < b.until
),
forfeited AS (
    SELECT 'forfeited' AS section, tenant_id, month, NULL, NULL, NULL,
           CAST(NULL AS TIMESTAMPTZ), CAST(NULL AS TIMESTAMPTZ), CAST(NULL AS BIGINT),
           NULL, NULL, -sum(amount), count(*)
    FROM entries
    WHERE kind = 'expire' AND ($month IS NULL OR month = $month)
    GROUP BY tenant_id, month
)
SELECT
    x.section,
    x.tenant_id,
    c.currency,
    x.month,
    CAST(x.lot_id AS BIGINT)                    AS lot_id,
    CAST(x.kind AS VARCHAR)                     AS kind,
    CAST(x.reference AS VARCHAR)                AS reference,
    x.funded_at,
    x.expires_at,
    x.days_left,
    CAST(x.amount AS DECIMAL(18, 6))            AS amount,
    CAST(x.remaining AS DECIMAL(18, 6))         AS remaining,
    CAST(x.forfeited AS DECIMAL(18, 6))         AS forfeited,
    CAST(x.lots AS BIGINT)                      AS lots
FROM (SELECT * FROM expiring UNION ALL SELECT * FROM forfeited) AS x
LEFT JOIN currencies AS c USING (tenant_id)
ORDER BY x.section, x.expires_at, x.tenant_id, x.month, x.lot_id
