-- GENERATED from ../single/0001_spans.sql by functions/storage/cluster-ddl.ts. Do not edit: change the single-node file and regenerate.
-- Replicated* local tables on every replica, Distributed tables under the names the code uses ({cluster} is substituted by the runner).
-- Riptide schema v1 (single node / embedded chDB). The cluster variant is ../cluster/0001_spans.sql.
-- Applied in order by functions/storage/migrations.ts; every statement is idempotent.
-- {ttl_days} (spans, default 7) and {tag_ttl_days} (dictionaries, ttl_days + 1) are substituted by the runner.

CREATE DATABASE IF NOT EXISTS riptide ON CLUSTER '{cluster}';

-- One row per span. Columns follow the Span JSON of DESIGN.md plus what trace assembly needs.
-- ReplacingMergeTree(_version, _deleted) keyed by span_id makes re-runs idempotent: the row from the
-- best-informed run (most batch objects in its slot window) wins, tombstones hide stale rows.
-- Readers must use FINAL (or the riptide.spans_view view) to never see a duplicate.
CREATE TABLE IF NOT EXISTS riptide.spans_local ON CLUSTER '{cluster}'
(
    span_id              String,
    trace_id             String,
    app_span_id          String,
    app_parent_span_id   String,
    signal_source        LowCardinality(String),
    agent_id             LowCardinality(String),
    slot                 UInt64,
    start_time           DateTime64(6, 'UTC'),
    end_time             DateTime64(6, 'UTC'),
    duration_us          UInt64,
    side                 Enum8('client' = 1, 'server' = 2),
    pair_state           Enum8('paired' = 0, 'request_only' = 1, 'response_only' = 2, 'one_way' = 3),
    l7_protocol          LowCardinality(String),
    version              LowCardinality(String),
    request_type         LowCardinality(String),
    request_domain       String,
    request_resource     String,
    endpoint             String,
    request_id           Int64,
    response_code        Int32,
    response_status      Enum8('ok' = 0, 'client_error' = 1, 'server_error' = 2, 'timeout' = 3, 'unknown' = 4),
    response_exception   String,
    request_bytes        UInt64,
    response_bytes       UInt64,
    process_name         LowCardinality(String),
    pid                  UInt32,
    tid                  UInt32,
    resp_tid             UInt32,
    coroutine_id         UInt64,
    resp_coroutine_id    UInt64,
    socket_id            UInt64,
    l4_protocol          LowCardinality(String),
    client_ip            String,
    client_port          UInt16,
    server_ip            String,
    server_port          UInt16,
    req_tcp_seq          UInt32,
    resp_tcp_seq         UInt32,
    syscall_trace_id_req  UInt64,
    syscall_trace_id_resp UInt64,
    x_request_id_req     String,
    x_request_id_resp    String,
    attributes           Map(LowCardinality(String), String),
    -- Smart-encoded tags: ids from functions/tag-encoder (0 = unknown), names in riptide.tag_names.
    host_id              UInt64,
    process_id           UInt64,
    container_id         UInt64,
    pod_id               UInt64,
    service_id           UInt64,
    node_id              UInt64,
    namespace_id         UInt64,
    peer_pod_id          UInt64,
    peer_service_id      UInt64,
    _version             UInt32,
    _deleted             UInt8,
    INDEX idx_span_id      span_id               TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_trace_id     trace_id              TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_xrid_req     x_request_id_req      TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_xrid_resp    x_request_id_resp     TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_sys_req      syscall_trace_id_req  TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_sys_resp     syscall_trace_id_resp TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_seq_req      req_tcp_seq           TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_seq_resp     resp_tcp_seq          TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_tid          tid                   TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_service      service_id            TYPE set(256)          GRANULARITY 4,
    INDEX idx_resource     request_resource      TYPE tokenbf_v1(8192, 3, 0) GRANULARITY 2
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', _version, _deleted)
PARTITION BY toDate(start_time)
-- Time first (every query is a time range), then host/process so the tag columns compress to runs,
-- then span_id, which makes the key unique (the ReplacingMergeTree dedup key). All of these are
-- pure functions of the span's batch content, so a re-run always lands on the same key.
ORDER BY (toStartOfMinute(start_time), host_id, process_id, span_id)
TTL toDateTime(start_time) + INTERVAL {ttl_days} DAY
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS riptide.spans ON CLUSTER '{cluster}' AS riptide.spans_local
ENGINE = Distributed('{cluster}', 'riptide', 'spans_local', sipHash64(span_id));

-- Tag dictionary: id -> name for hosts, processes, containers, pods, services, nodes, namespaces.
-- Ids are 53-bit hashes of "kind:key" (functions/tag-encoder/tag-id.ts), so any replica computes the
-- same id without coordination; rows are refreshed while in use so the TTL only drops dead entities.
CREATE TABLE IF NOT EXISTS riptide.tag_names_local ON CLUSTER '{cluster}'
(
    id          UInt64,
    kind        LowCardinality(String),
    key         String,
    name        String,
    -- Containment: a pod's namespace and node, a process's container/pod, a service's namespace.
    parent_ids  Map(LowCardinality(String), UInt64),
    updated_at  DateTime('UTC'),
    INDEX idx_name name TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', updated_at)
PARTITION BY toYYYYMM(updated_at)
ORDER BY id
TTL updated_at + INTERVAL {tag_ttl_days} DAY;

CREATE TABLE IF NOT EXISTS riptide.tag_names ON CLUSTER '{cluster}' AS riptide.tag_names_local
ENGINE = Distributed('{cluster}', 'riptide', 'tag_names_local', id);

-- Kubernetes labels and annotations of tagged entities (source 'label' | 'annotation' | 'host').
CREATE TABLE IF NOT EXISTS riptide.tag_labels_local ON CLUSTER '{cluster}'
(
    id          UInt64,
    kind        LowCardinality(String),
    source      LowCardinality(String),
    key         LowCardinality(String),
    value       String,
    updated_at  DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', updated_at)
PARTITION BY toYYYYMM(updated_at)
ORDER BY (id, source, key)
TTL updated_at + INTERVAL {tag_ttl_days} DAY;

CREATE TABLE IF NOT EXISTS riptide.tag_labels ON CLUSTER '{cluster}' AS riptide.tag_labels_local
ENGINE = Distributed('{cluster}', 'riptide', 'tag_labels_local', id);

-- Custom tags injected through the API (a CMDB: owner, team, cost centre…), never copied into spans.
-- A deletion is a row with _deleted = 1. The TTL is long: these are curated, not observed.
CREATE TABLE IF NOT EXISTS riptide.custom_tags_local ON CLUSTER '{cluster}'
(
    id          UInt64,
    kind        LowCardinality(String),
    name        String,
    key         LowCardinality(String),
    value       String,
    updated_at  DateTime64(3, 'UTC'),
    _deleted    UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', updated_at, _deleted)
PARTITION BY toYYYYMM(updated_at)
ORDER BY (id, key)
TTL toDateTime(updated_at) + INTERVAL 3650 DAY;

CREATE TABLE IF NOT EXISTS riptide.custom_tags ON CLUSTER '{cluster}' AS riptide.custom_tags_local
ENGINE = Distributed('{cluster}', 'riptide', 'custom_tags_local', id);

-- Processed slot windows: lets a runtime skip work it has done and shows what was processed.
CREATE TABLE IF NOT EXISTS riptide.processed_slots_local ON CLUSTER '{cluster}'
(
    agent_id      LowCardinality(String),
    slot          UInt64,
    slot_seconds  UInt32,
    objects       UInt32,
    spans         UInt32,
    processed_at  DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', objects)
PARTITION BY toDate(processed_at)
ORDER BY (agent_id, slot)
TTL processed_at + INTERVAL {ttl_days} DAY;

CREATE TABLE IF NOT EXISTS riptide.processed_slots ON CLUSTER '{cluster}' AS riptide.processed_slots_local
ENGINE = Distributed('{cluster}', 'riptide', 'processed_slots_local', sipHash64(agent_id));

-- The convenience read path: no duplicates, names resolved. Query code may also use FINAL directly.
CREATE VIEW IF NOT EXISTS riptide.spans_view ON CLUSTER '{cluster}' AS
SELECT s.*,
       toUnixTimestamp64Micro(s.start_time) AS start_time_us,
       toUnixTimestamp64Micro(s.end_time)   AS end_time_us,
       if(s.x_request_id_req != '', s.x_request_id_req, s.x_request_id_resp) AS x_request_id,
       n.name AS service
FROM riptide.spans AS s FINAL
LEFT JOIN (SELECT id, argMax(name, updated_at) AS name FROM riptide.tag_names GROUP BY id) AS n ON n.id = s.service_id;
