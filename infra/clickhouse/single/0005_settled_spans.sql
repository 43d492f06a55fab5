-- Riptide schema v5: exact rows in riptide.spans (single node / embedded chDB; cluster: ../cluster/0005_settled_spans.sql).
-- From this version on, riptide.spans receives each span once, when its slot settles (the pairing
-- window of the slot has closed: its last neighbour slot ended a grace period ago), so plain SQL
-- (`SELECT count() FROM riptide.spans`) counts every span exactly once, without FINAL and whatever
-- the merges did. Until then a slot's rows live in riptide.spans_recent, rewritten as neighbours
-- arrive (ReplacingMergeTree versions and tombstones, read with FINAL); the query API reads both,
-- recent rows only for slots not in riptide.settled_slots (functions/storage/span-store.ts liveSpans).

-- The unsettled rows: same columns and indexes as riptide.spans, kept an hour (a slot settles
-- seconds after its window closes; anything older is settled or abandoned).
CREATE TABLE IF NOT EXISTS riptide.spans_recent AS riptide.spans
ENGINE = ReplacingMergeTree(_version, _deleted)
PARTITION BY toDate(start_time)
ORDER BY (toStartOfMinute(start_time), host_id, process_id, span_id)
TTL toDateTime(start_time) + INTERVAL 1 HOUR
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192, merge_with_ttl_timeout = 600;

-- One row per settled (agent, slot): its rows are in riptide.spans and never written again; readers
-- skip its rows in spans_recent. Also what makes settling idempotent (a settled slot is skipped).
CREATE TABLE IF NOT EXISTS riptide.settled_slots
(
    agent_id      LowCardinality(String),
    slot          UInt64,
    slot_seconds  UInt32,
    slot_start    DateTime('UTC'),
    objects       UInt32,
    spans         UInt32,
    settled_at    DateTime('UTC')
)
ENGINE = ReplacingMergeTree(settled_at)
PARTITION BY toDate(slot_start)
ORDER BY (slot_start, agent_id, slot)
TTL slot_start + INTERVAL {ttl_days} DAY;
