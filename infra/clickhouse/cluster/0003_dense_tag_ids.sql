-- Riptide schema v3, cluster variant of ../single/0003_dense_tag_ids.sql.
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
