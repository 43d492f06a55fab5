-- Riptide schema v8: network spans and TCP health (issue 19; cluster: ../cluster/0008_net_spans.sql).
-- observation_point: the interface a network span (signal_source = 'net') was seen at; '' for
-- process spans. tcp_retransmits / tcp_srtt_us / tcp_connect_failures: TCP health of the span's
-- connection from the agent's tcp/sock tracepoints (agent --net-interfaces), summed per edge by
-- /api/v1/service-map.
ALTER TABLE riptide.spans ADD COLUMN IF NOT EXISTS observation_point LowCardinality(String);
ALTER TABLE riptide.spans_recent ADD COLUMN IF NOT EXISTS observation_point LowCardinality(String);
ALTER TABLE riptide.spans ADD COLUMN IF NOT EXISTS tcp_retransmits UInt32 CODEC(T64, ZSTD(1));
ALTER TABLE riptide.spans_recent ADD COLUMN IF NOT EXISTS tcp_retransmits UInt32 CODEC(T64, ZSTD(1));
ALTER TABLE riptide.spans ADD COLUMN IF NOT EXISTS tcp_srtt_us UInt32 CODEC(T64, ZSTD(1));
ALTER TABLE riptide.spans_recent ADD COLUMN IF NOT EXISTS tcp_srtt_us UInt32 CODEC(T64, ZSTD(1));
ALTER TABLE riptide.spans ADD COLUMN IF NOT EXISTS tcp_connect_failures UInt32 CODEC(T64, ZSTD(1));
ALTER TABLE riptide.spans_recent ADD COLUMN IF NOT EXISTS tcp_connect_failures UInt32 CODEC(T64, ZSTD(1));
