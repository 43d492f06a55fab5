-- Riptide schema v9: protocol descriptors of Wasm plugins (issue 13; cluster: ../cluster/0009_protocol_descriptors.sql).
-- A batch carries the descriptor of every protocol in it (RTB format 4); the functions runtime
-- records here the ones that are not built-in (functions/storage/protocol-descriptors.ts), when new
-- or changed and once a day while in use, so the query side (GET /api/v1/protocols, trace assembly)
-- knows plugin protocols too. A row never overrides a built-in name: writer and reader both drop it.
-- descriptor: the ProtocolDescriptor as JSON ({name, aliases, pairing, oneWay, timeoutMs?, sequenceSlack?}).
-- The newest row per name wins (readers take argMax over updated_at: rows of one name may sit in
-- two monthly partitions until the TTL drops the older one).
CREATE TABLE IF NOT EXISTS riptide.protocol_descriptors
(
    name        String,
    descriptor  String,
    agent_id    LowCardinality(String),
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(updated_at)
ORDER BY name
TTL toDateTime(updated_at) + INTERVAL {tag_ttl_days} DAY;
