-- GENERATED from ../single/0002_processed_batches.sql by functions/storage/cluster-ddl.ts. Do not edit: change the single-node file and regenerate.
-- Replicated* local tables on every replica, Distributed tables under the names the code uses ({cluster} is substituted by the runner).
-- Riptide schema v2: the processed-batches ledger of the polling runtime (functions/runtime/local-runtime.ts).
-- One row per batch object handled; a runtime restarting skips what is recorded here.

CREATE TABLE IF NOT EXISTS riptide.processed_batches_local ON CLUSTER '{cluster}'
(
    key           String,
    agent_id      LowCardinality(String),
    slot          UInt64,
    status        LowCardinality(String),
    processed_at  DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', processed_at)
PARTITION BY toDate(processed_at)
ORDER BY key
TTL processed_at + INTERVAL {ttl_days} DAY;

CREATE TABLE IF NOT EXISTS riptide.processed_batches ON CLUSTER '{cluster}' AS riptide.processed_batches_local
ENGINE = Distributed('{cluster}', 'riptide', 'processed_batches_local', sipHash64(key));
