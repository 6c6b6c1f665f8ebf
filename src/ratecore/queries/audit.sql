-- audit: Microsoft's charge versus ratecore's for calls imported from Teams
-- PSTN usage exports (ratecore import-teams), per call and in total.
--
-- Which calls: every rated call whose CDR carried a Microsoft price (any of
-- reference_charge, reference_connection_fee, reference_currency not NULL),
-- and every rejected one that did (Microsoft charged a call ratecore did
-- not rate), once per usage_id, unless it was rated after all (a
-- `duplicate` reject, or a row fixed and rated by a later run).
--
-- Microsoft's "Charge" is taken as the whole amount charged for the call;
-- its "Connection Fee" is shown beside it, not added. ratecore's charge is
-- rated.charge (connect fee included, what was charged to credits).
--
-- One result, three kinds of rows (row_kind), ordered so that each tenant
-- and month lists its calls, then its totals; the grand totals come last:
--   call         one per call. difference = ratecore_charge - microsoft_charge
--                when the two can be compared (comparison 'equal' or
--                'differs'); else NULL and comparison says why:
--                'rejected' (ratecore did not rate it), 'no_microsoft_charge'
--                (the export's Charge was empty), 'currency_mismatch' (both
--                currencies known and different).
--   total        one per tenant, month and currency;
--   grand_total  one per currency over the whole selection.
--                calls / compared / differing / not_compared count calls;
--                microsoft_charge, ratecore_charge and difference sum the
--                compared calls only (so ratecore_charge - microsoft_charge =
--                difference); microsoft_charge_not_compared sums Microsoft's
--                charge of the other calls.
-- `currency` is Microsoft's currency, or ratecore's when the export had none.
-- Money stays DECIMAL; sums are exact.
-- Parameters: $month (YYYY-MM of the start time, or NULL for all),
-- $tenant (or NULL for all).
WITH rated_calls AS (
    SELECT tenant_id, month, usage_id, start_time, user_id, call_type, caller_number,
           callee_number, duration_seconds, status, capability,
           reference_currency                        AS microsoft_currency,
           reference_connection_fee                  AS microsoft_connection_fee,
           reference_charge                          AS microsoft_charge,
           currency                                  AS ratecore_currency,
           charge                                    AS ratecore_charge
    FROM rated
    WHERE (reference_charge IS NOT NULL OR reference_connection_fee IS NOT NULL
           OR reference_currency IS NOT NULL)
      AND ($month IS NULL OR month = $month) AND ($tenant IS NULL OR tenant_id = $tenant)
),
rejected_calls AS (
    SELECT tenant_id, month, usage_id, TRY_CAST(start_time AS TIMESTAMPTZ) AS start_time,
           user_id, call_type, caller_number, callee_number,
           TRY_CAST(duration_seconds AS BIGINT) AS duration_seconds,
           'rejected: ' || reason AS status, CAST(NULL AS VARCHAR) AS capability,
           NULLIF(upper(trim(reference_currency)), '') AS microsoft_currency,
           TRY_CAST(NULLIF(trim(reference_connection_fee), '') AS DECIMAL(18, 6))
                                                     AS microsoft_connection_fee,
           TRY_CAST(NULLIF(trim(reference_charge), '') AS DECIMAL(18, 6)) AS microsoft_charge,
           CAST(NULL AS VARCHAR) AS ratecore_currency,
           CAST(NULL AS DECIMAL(18, 6)) AS ratecore_charge
    FROM rejects
    WHERE reason <> 'duplicate'
      AND (NULLIF(trim(reference_charge), '') IS NOT NULL
           OR NULLIF(trim(reference_connection_fee), '') IS NOT NULL
           OR NULLIF(trim(reference_currency), '') IS NOT NULL)
      AND ($month IS NULL OR month = $month) AND ($tenant IS NULL OR tenant_id = $tenant)
    -- a run repeated over the same files rejects the same row again: once each
    QUALIFY row_number() OVER (
        PARTITION BY tenant_id, coalesce(NULLIF(usage_id, ''), file || ':' || row)
        ORDER BY file, row) = 1
),
imported AS (
    SELECT * FROM rated_calls
    UNION ALL BY NAME
    -- rated after all (fixed config, run again): the rated row stands. Only
    -- the imported rated rows are looked at, never all of rated.
    SELECT * FROM rejected_calls
    WHERE NOT EXISTS (SELECT 1 FROM rated_calls WHERE rated_calls.usage_id = rejected_calls.usage_id)
),
calls AS (
    SELECT *,
           coalesce(microsoft_currency, ratecore_currency) AS currency,
           CASE
               WHEN ratecore_charge IS NULL THEN 'rejected'
               WHEN microsoft_charge IS NULL THEN 'no_microsoft_charge'
               WHEN microsoft_currency <> ratecore_currency THEN 'currency_mismatch'
               WHEN ratecore_charge = microsoft_charge THEN 'equal'
               ELSE 'differs'
           END AS comparison
    FROM imported
),
compared AS (
    SELECT *, comparison IN ('equal', 'differs') AS is_compared,
           CASE WHEN comparison IN ('equal', 'differs')
                THEN ratecore_charge - microsoft_charge END AS difference
    FROM calls
),
totals AS (
    SELECT CASE WHEN grouping(tenant_id) = 0 THEN 'total' ELSE 'grand_total' END AS row_kind,
           tenant_id, month, currency,
           count(*)                                                     AS calls,
           count(*) FILTER (WHERE is_compared)                          AS compared,
           count(*) FILTER (WHERE comparison = 'differs')               AS differing,
           count(*) FILTER (WHERE NOT is_compared)                      AS not_compared,
           coalesce(sum(microsoft_charge) FILTER (WHERE is_compared), 0) AS microsoft_charge,
           coalesce(sum(ratecore_charge) FILTER (WHERE is_compared), 0)  AS ratecore_charge,
           coalesce(sum(difference), 0)                                 AS difference,
           coalesce(sum(microsoft_charge) FILTER (WHERE NOT is_compared), 0)
                                                                        AS microsoft_charge_not_compared
    FROM compared
    GROUP BY GROUPING SETS ((tenant_id, month, currency), (currency))
)
SELECT row_kind, tenant_id, month, currency, usage_id, start_time, user_id, call_type,
       caller_number, callee_number, duration_seconds, status, capability,
       microsoft_currency, ratecore_currency, microsoft_connection_fee,
       microsoft_charge, ratecore_charge, difference, comparison,
       calls, compared, differing, not_compared, microsoft_charge_not_compared
FROM (
    SELECT 'call' AS row_kind, tenant_id, month, currency, usage_id, start_time, user_id,
           call_type, caller_number, callee_number, duration_seconds, status, capability,
           microsoft_currency, ratecore_currency, microsoft_connection_fee,
           microsoft_charge, ratecore_charge, difference, comparison,
           CAST(NULL AS BIGINT) AS calls, CAST(NULL AS BIGINT) AS compared,
           CAST(NULL AS BIGINT) AS differing, CAST(NULL AS BIGINT) AS not_compared,
           CAST(NULL AS DECIMAL(38, 6)) AS microsoft_charge_not_compared
    FROM compared
    UNION ALL BY NAME
    SELECT row_kind, tenant_id, month, currency,
           CAST(NULL AS VARCHAR) AS usage_id, CAST(NULL AS TIMESTAMPTZ) AS start_time,
           CAST(NULL AS VARCHAR) AS user_id, CAST(NULL AS VARCHAR) AS call_type,
           CAST(NULL AS VARCHAR) AS caller_number, CAST(NULL AS VARCHAR) AS callee_number,
           CAST(NULL AS BIGINT) AS duration_seconds, CAST(NULL AS VARCHAR) AS status,
           CAST(NULL AS VARCHAR) AS capability, CAST(NULL AS VARCHAR) AS microsoft_currency,
           CAST(NULL AS VARCHAR) AS ratecore_currency,
           CAST(NULL AS DECIMAL(18, 6)) AS microsoft_connection_fee,
           microsoft_charge, ratecore_charge, difference, CAST(NULL AS VARCHAR) AS comparison,
           calls, compared, differing, not_compared, microsoft_charge_not_compared
    FROM totals
) AS audit
ORDER BY tenant_id NULLS LAST, month NULLS LAST,
         CASE row_kind WHEN 'call' THEN 0 WHEN 'total' THEN 1 ELSE 2 END,
         currency NULLS LAST, start_time, usage_id
