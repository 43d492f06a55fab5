-- GENERATED from ../single/0006_handoff.sql by functions/storage/cluster-ddl.ts. Do not edit: change the single-node file and regenerate.
-- Replicated* local tables on every replica, Distributed tables under the names the code uses ({cluster} is substituted by the runner).
-- Riptide schema v6: hand-offs between threads (cluster: ../cluster/0006_handoff.sql).
-- handoff_trace_id: the syscall-trace id a wake-up handed to the thread that sent a span's request
-- (a thread pool's reader waking the worker that makes the call; agent --handoff); 0 when none.
-- Trace assembly's `handoff` rule reads it (docs/TRACE-ASSEMBLY.md).

ALTER TABLE riptide.spans_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS handoff_trace_id UInt64 CODEC(T64, ZSTD(1));

ALTER TABLE riptide.spans ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS handoff_trace_id UInt64;

ALTER TABLE riptide.spans_recent_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS handoff_trace_id UInt64 CODEC(T64, ZSTD(1));

ALTER TABLE riptide.spans_recent ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS handoff_trace_id UInt64;

-- Assembly asks for it with the syscall-trace ids (a server span's request id finds the calls
-- handed off from it): the same bloom filter as the other id columns.
ALTER TABLE riptide.spans_local ON CLUSTER '{cluster}' ADD INDEX IF NOT EXISTS idx_handoff handoff_trace_id TYPE bloom_filter(0.01) GRANULARITY 1;

ALTER TABLE riptide.spans_recent_local ON CLUSTER '{cluster}' ADD INDEX IF NOT EXISTS idx_handoff handoff_trace_id TYPE bloom_filter(0.01) GRANULARITY 1;
