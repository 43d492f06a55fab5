-- Riptide schema v5, cluster variant of ../single/0005_settled_spans.sql (exact rows in riptide.spans:
-- settled slots only; unsettled rows in spans_recent; settled slots listed in settled_slots).

CREATE TABLE IF NOT EXISTS riptide.spans_recent_local ON CLUSTER '{cluster}' AS riptide.spans_local
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', _version, _deleted)
PARTITION BY toDate(start_time)
ORDER BY (toStartOfMinute(start_time), host_id, process_id, span_id)
TTL toDateTime(start_time) + INTERVAL 1 HOUR
SETTINGS index_granularity = 8192, merge_with_ttl_timeout = 600;

CREATE TABLE IF NOT EXISTS riptide.settled_slots_local ON CLUSTER '{cluster}'
(
    agent_id      LowCardinality(String),
    slot          UInt64,
    slot_seconds  UInt32,
    slot_start    DateTime('UTC'),
    objects       UInt32,
    spans         UInt32,
    settled_at    DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/riptide/{table}', '{replica}', settled_at)
PARTITION BY toDate(slot_start)
ORDER BY (slot_start, agent_id, slot)
TTL slot_start + INTERVAL {ttl_days} DAY;

-- Sharded like spans (every version of a span on one shard, for FINAL).
CREATE TABLE IF NOT EXISTS riptide.spans_recent ON CLUSTER '{cluster}' AS riptide.spans_recent_local
ENGINE = Distributed('{cluster}', 'riptide', 'spans_recent_local', sipHash64(span_id));

CREATE TABLE IF NOT EXISTS riptide.settled_slots ON CLUSTER '{cluster}' AS riptide.settled_slots_local
ENGINE = Distributed('{cluster}', 'riptide', 'settled_slots_local', sipHash64(agent_id));
