-- pools: minute pools per tenant, month and pool (the Teams PSTN minute
-- pools report): country or region, capability, total minutes, minutes
-- used, minutes available, percent used. A pool appears in a month when a
-- call drew from it; its size is the size at its last draw (README).
-- scope is the country group (MCOPSTN1:domestic:US), the user of a
-- per-user pool, or "tenant" for the tenant-wide dial-out pool.
-- Minutes are exact to the hundredth (seconds / 60, rounded half up).
-- Parameters: $month (YYYY-MM or NULL), $tenant (or NULL).
SELECT
    tenant_id,
    month,
    pool,
    CASE WHEN kind IN ('domestic', 'international') THEN scope END AS country_or_region,
    capability,
    kind,
    scope,
    CAST((size_seconds * 100 + 30) // 60 * 0.01 AS DECIMAL(18, 2))          AS total_minutes,
    CAST((used_seconds * 100 + 30) // 60 * 0.01 AS DECIMAL(18, 2))          AS minutes_used,
    CAST((greatest(size_seconds - used_seconds, 0) * 100 + 30) // 60 * 0.01 AS DECIMAL(18, 2))
                                                                            AS minutes_available,
    CAST(CASE WHEN size_seconds > 0
              THEN (used_seconds * 1000 + size_seconds // 2) // size_seconds * 0.1 END
         AS DECIMAL(6, 1))                                                  AS percent_used,
    size_seconds,
    used_seconds
FROM pools
WHERE ($month IS NULL OR month = $month)
  AND ($tenant IS NULL OR tenant_id = $tenant)
ORDER BY tenant_id, month, pool
