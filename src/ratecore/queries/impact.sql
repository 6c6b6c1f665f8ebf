-- impact: two ratings of the same CDRs side by side, the current outputs
-- (--data) and a candidate's (--candidate, rated with `ratecore rate --deck`).
--
-- Sections, each row with calls and revenue (the sum of charge) under both:
--   country      per currency and destination country
--   destination  per currency, country and destination
--   tenant       per currency and tenant
--   status       per change of status (current -> candidate), currency,
--                country and destination: the calls whose status changed
--                (a call only one side rated shows its status as NULL there)
-- In the first three, each side counts its own calls charged (charge <> 0)
-- under its own deck row's country and destination. delta = candidate -
-- current; delta_percent is delta / current revenue (NULL when that is 0),
-- truncated to hundredths. Sorted by section, then by |delta|, largest first.
-- Parameters: $month (YYYY-MM of the start time, or NULL), $tenant.
WITH
cur AS NOT MATERIALIZED (
    SELECT usage_id, tenant_id, currency, country, destination, status, charge
    FROM rated
    WHERE ($month IS NULL OR month = $month) AND ($tenant IS NULL OR tenant_id = $tenant)
),
cand AS NOT MATERIALIZED (
    SELECT usage_id, tenant_id, currency, country, destination, status, charge
    FROM candidate_rated
    WHERE ($month IS NULL OR month = $month) AND ($tenant IS NULL OR tenant_id = $tenant)
),
charged AS (
    SELECT tenant_id, currency, country, destination,
           1 AS current_calls, 0 AS candidate_calls, charge AS current, 0 AS candidate
    FROM cur WHERE charge <> 0
    UNION ALL
    SELECT tenant_id, currency, country, destination, 0, 1, 0, charge
    FROM cand WHERE charge <> 0
),
revenue AS (
    SELECT CASE WHEN grouping(destination) = 0 THEN 2
                WHEN grouping(country) = 0 THEN 1 ELSE 3 END AS k,
           currency, country, destination, tenant_id,
           NULL AS current_status, NULL AS candidate_status,
           sum(current_calls) AS current_calls, sum(candidate_calls) AS candidate_calls,
           sum(current) AS current_revenue, sum(candidate) AS candidate_revenue
    FROM charged
    GROUP BY GROUPING SETS ((currency, country), (currency, country, destination),
                            (currency, tenant_id))
),
changed AS (
    SELECT 4 AS k, coalesce(n.currency, c.currency) AS currency,
           coalesce(n.country, c.country) AS country,
           coalesce(n.destination, c.destination) AS destination, NULL AS tenant_id,
           c.status AS current_status, n.status AS candidate_status,
           count(c.usage_id) AS current_calls, count(n.usage_id) AS candidate_calls,
           coalesce(sum(c.charge), 0) AS current_revenue,
           coalesce(sum(n.charge), 0) AS candidate_revenue
    -- free and zero_duration are decided before any deck row is looked up
    -- (SPEC §4), so neither side can change them: leave them out of the join
    FROM (SELECT * FROM cur WHERE status NOT IN ('free', 'zero_duration')) AS c
    FULL JOIN (SELECT * FROM cand WHERE status NOT IN ('free', 'zero_duration')) AS n
        USING (usage_id)
    WHERE c.status IS DISTINCT FROM n.status
    GROUP BY ALL
),
sides AS (
    SELECT * FROM revenue UNION ALL SELECT * FROM changed
)
SELECT
    CASE k WHEN 1 THEN 'country' WHEN 2 THEN 'destination' WHEN 3 THEN 'tenant'
           ELSE 'status' END                                        AS section,
    currency,
    CAST(country AS VARCHAR)                                        AS country,
    CAST(destination AS VARCHAR)                                    AS destination,
    CAST(tenant_id AS VARCHAR)                                      AS tenant_id,
    CAST(current_status AS VARCHAR)                                 AS current_status,
    CAST(candidate_status AS VARCHAR)                               AS candidate_status,
    CAST(current_calls AS BIGINT)                                   AS current_calls,
    CAST(candidate_calls AS BIGINT)                                 AS candidate_calls,
    CAST(current_revenue AS DECIMAL(18, 6))                         AS current_revenue,
    CAST(candidate_revenue AS DECIMAL(18, 6))                       AS candidate_revenue,
    CAST(candidate_revenue - current_revenue AS DECIMAL(18, 6))     AS delta,
    CAST(CASE WHEN current_revenue <> 0
              THEN CAST((candidate_revenue - current_revenue) * 1000000 AS HUGEINT) * 10000
                   // CAST(current_revenue * 1000000 AS HUGEINT) * 0.01 END
         AS DECIMAL(18, 2))                                         AS delta_percent
FROM sides
ORDER BY k, abs(candidate_revenue - current_revenue) DESC, currency, country, destination,
         tenant_id, current_status, candidate_status
