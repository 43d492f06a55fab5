-- GENERATED from ../single/0003_dense_tag_ids.sql by functions/storage/cluster-ddl.ts. Do not edit: change the single-node file and regenerate.
-- Replicated* local tables on every replica, Distributed tables under the names the code uses ({cluster} is substituted by the runner).
-- Riptide schema v3: dense tag ids. Span rows carry small per-kind integers (ZSTD-coded) instead of
-- 53-bit hashes: measured 2-3x smaller on disk (docs/BENCHMARKS.md). The registry below maps
-- (kind, key) to the id; tag_names gains the stable entity hash (what custom_tags.id holds).
-- The columns stay UInt64 (sorting-key columns cannot change type, and hash ids from other writers,
-- such as OTLP ingest, must still fit); with ZSTD the zero high bytes of dense ids cost next to nothing.

-- The id registry, loaded at start by functions/tag-encoder/tag-ids.ts. Never rewritten; a long TTL
-- (ids must outlive every span and dictionary row that uses them).
CREATE TABLE IF NOT EXISTS riptide.tag_ids_local ON CLUSTER '{cluster}'
(
    kind        LowCardinality(String),
    key         String,
    id          UInt32,
    entity      UInt64,
    claimed_at  DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', claimed_at)
PARTITION BY toYYYYMM(claimed_at)
ORDER BY (kind, key)
TTL toDateTime(claimed_at) + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS riptide.tag_ids ON CLUSTER '{cluster}' AS riptide.tag_ids_local
ENGINE = Distributed('{cluster}', 'riptide', 'tag_ids_local', sipHash64(kind, key));

ALTER TABLE riptide.tag_names_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS entity UInt64 AFTER id;

ALTER TABLE riptide.tag_names ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS entity UInt64 AFTER id;

ALTER TABLE riptide.spans_local ON CLUSTER '{cluster}'
    MODIFY COLUMN host_id         UInt64 CODEC(ZSTD(1)),
    MODIFY COLUMN process_id      UInt64 CODEC(ZSTD(1)),
    MODIFY COLUMN container_id    UInt64 CODEC(ZSTD(1)),
    MODIFY COLUMN pod_id          UInt64 CODEC(ZSTD(1)),
    MODIFY COLUMN service_id      UInt64 CODEC(ZSTD(1)),
    MODIFY COLUMN node_id         UInt64 CODEC(ZSTD(1)),
    MODIFY COLUMN namespace_id    UInt64 CODEC(ZSTD(1)),
    MODIFY COLUMN peer_pod_id     UInt64 CODEC(ZSTD(1)),
    MODIFY COLUMN peer_service_id UInt64 CODEC(ZSTD(1));

ALTER TABLE riptide.spans ON CLUSTER '{cluster}'
    MODIFY COLUMN host_id         UInt64,
    MODIFY COLUMN process_id      UInt64,
    MODIFY COLUMN container_id    UInt64,
    MODIFY COLUMN pod_id          UInt64,
    MODIFY COLUMN service_id      UInt64,
    MODIFY COLUMN node_id         UInt64,
    MODIFY COLUMN namespace_id    UInt64,
    MODIFY COLUMN peer_pod_id     UInt64,
    MODIFY COLUMN peer_service_id UInt64;
