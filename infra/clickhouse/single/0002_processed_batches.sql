-- Riptide schema v2: the processed-batches ledger of the polling runtime (functions/runtime/local-runtime.ts).
-- One row per batch object handled; a runtime restarting skips what is recorded here.
CREATE TABLE IF NOT EXISTS riptide.processed_batches
(
    key           String,
    agent_id      LowCardinality(String),
    slot          UInt64,
    status        LowCardinality(String),
    processed_at  DateTime('UTC')
)
ENGINE = ReplacingMergeTree(processed_at)
PARTITION BY toDate(processed_at)
ORDER BY key
TTL processed_at + INTERVAL {ttl_days} DAY;
