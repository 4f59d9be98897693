-- Data-quality failures per job and reason (the first failed ERROR check) over the DLQ of the last
-- 7 days: `dt` is the processing date, so this window is relative to today (UTC). How many records
-- each reason sent to the DLQ and its share of the job's failures; the records a job processed
-- are its CloudWatch metric RecordsProcessed (CryptoPulse/Quality).
SELECT
  job,
  reason,
  count(*) AS failed_records,
  round(100 * CAST(count(*) AS double) / sum(count(*)) OVER (PARTITION BY job), 2)
    AS pct_of_job_failures,
  min(dt) AS first_dt,
  max(dt) AS last_dt
FROM crypto_pulse.dlq
WHERE dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
GROUP BY job, reason
ORDER BY job, failed_records DESC, reason
