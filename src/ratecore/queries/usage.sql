-- usage: PSTN usage details in the column order of the Teams admin center
-- export (SPEC §7), one row per rated call, with ratecore's charges.
-- Columns ratecore does not know (User Location, AAD ObjectId, User Display
-- Name) are NULL. "Connection Fee" is the deck row's fee when the call was
-- charged to credits (charge > 0), else 0. "Destination Dialed" is the deck
-- row's destination name; "Domestic/International" is NULL for calls that
-- no deck row priced.
-- Rows come in the order rated/ holds them: month partition, then file
-- (run number, stretch of start time billed, part), then row; within a
-- stretch, the order the run read its CDRs. No ORDER BY: sorting a month of 20M calls by start time took
-- most of the report's time (measured, README "Reports"), and the runner
-- keeps DuckDB's insertion order (preserve_insertion_order), so the order is
-- the same on every run over the same outputs.
-- Parameters: $month (YYYY-MM of the start time, or NULL for all),
-- $tenant (or NULL for all).
SELECT
    usage_id                                        AS "UsageId",
    call_id                                         AS "Call ID",
    conference_id                                   AS "Conference ID",
    CAST(NULL AS VARCHAR)                           AS "User Location",
    CAST(NULL AS VARCHAR)                           AS "AAD ObjectId",
    user_id                                         AS "UPN",
    CAST(NULL AS VARCHAR)                           AS "User Display Name",
    caller_number                                   AS "Caller ID",
    call_type                                       AS "Call Type",
    number_type                                     AS "Number Type",
    CASE domestic WHEN true THEN 'Domestic' WHEN false THEN 'International' END
                                                    AS "Domestic/International",
    destination                                     AS "Destination Dialed",
    callee_number                                   AS "Destination Number",
    start_time                                      AS "Start Time",
    start_time + to_seconds(duration_seconds)       AS "End Time",
    duration_seconds                                AS "Duration Seconds",
    CAST(CASE WHEN charge > 0 THEN connect_fee ELSE 0 END AS DECIMAL(18, 6))
                                                    AS "Connection Fee",
    charge                                          AS "Charge",
    currency                                        AS "Currency",
    capability                                      AS "Capability"
FROM rated
WHERE ($month IS NULL OR month = $month)
  AND ($tenant IS NULL OR tenant_id = $tenant)
