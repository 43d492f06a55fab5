-- GENERATED from ../single/0004_edge_rollups.sql by functions/storage/cluster-ddl.ts. Do not edit: change the single-node file and regenerate.
-- Replicated* local tables on every replica, Distributed tables under the names the code uses ({cluster} is substituted by the runner).
-- Riptide schema v4: per-minute service-map rollups, so a map over hours reads rollup rows instead
-- of every span. Computed read-through by the query side (functions/query/service-map.ts) for
-- minutes that have settled, from `spans FINAL` (so re-run and tombstoned spans count once), and
-- recomputed when spans of that minute are written again (a late batch, a re-run).

-- Which minutes of spans were written, and when (the span writer adds a row per minute it touches).
CREATE TABLE IF NOT EXISTS riptide.span_writes_local ON CLUSTER '{cluster}'
(
    minute      DateTime('UTC'),
    written_at  DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', written_at)
PARTITION BY toDate(minute)
ORDER BY minute
TTL minute + INTERVAL {ttl_days} DAY;

CREATE TABLE IF NOT EXISTS riptide.span_writes ON CLUSTER '{cluster}' AS riptide.span_writes_local
ENGINE = Distributed('{cluster}', 'riptide', 'span_writes_local', toUInt32(minute));

-- One row per rolled-up minute and computation: the write it saw (a later write makes it stale).
-- Written after that computation's edge rows, so a reader never sees a half-written rollup.
CREATE TABLE IF NOT EXISTS riptide.rollup_minutes_local ON CLUSTER '{cluster}'
(
    minute             DateTime('UTC'),
    computed_at        DateTime64(3, 'UTC'),
    source_written_at  DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', computed_at)
PARTITION BY toDate(minute)
ORDER BY minute
TTL minute + INTERVAL {ttl_days} DAY;

CREATE TABLE IF NOT EXISTS riptide.rollup_minutes ON CLUSTER '{cluster}' AS riptide.rollup_minutes_local
ENGINE = Distributed('{cluster}', 'riptide', 'rollup_minutes_local', toUInt32(minute));

-- RED per minute and raw group (the service map's group: side, service, peer, process, addresses)
-- and protocol. Readers take the rows of the minute's latest computed_at.
CREATE TABLE IF NOT EXISTS riptide.edge_minutes_local ON CLUSTER '{cluster}'
(
    minute           DateTime('UTC'),
    computed_at      DateTime64(3, 'UTC'),
    h                UInt64,
    side             Enum8('client' = 1, 'server' = 2),
    service_id       UInt64,
    peer_service_id  UInt64,
    process_name     LowCardinality(String),
    client_ip        String,
    server_ip        String,
    server_port      UInt16,
    l7_protocol      LowCardinality(String),
    requests         UInt64,
    errors           UInt64,
    q                AggregateFunction(quantiles(0.5, 0.99), UInt64),
    slowest          AggregateFunction(argMax, String, UInt64)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}')
PARTITION BY toDate(minute)
ORDER BY (minute, computed_at, h, l7_protocol)
TTL minute + INTERVAL {ttl_days} DAY;

CREATE TABLE IF NOT EXISTS riptide.edge_minutes ON CLUSTER '{cluster}' AS riptide.edge_minutes_local
ENGINE = Distributed('{cluster}', 'riptide', 'edge_minutes_local', toUInt32(minute));

-- Minutes written before this migration: mark them written now, so their first map computes them.
INSERT INTO riptide.span_writes SELECT DISTINCT toStartOfMinute(start_time), now64(3) FROM riptide.spans;
