-- GENERATED from ../single/0007_tag_ids_wide.sql by functions/storage/cluster-ddl.ts. Do not edit: change the single-node file and regenerate.
-- Replicated* local tables on every replica, Distributed tables under the names the code uses ({cluster} is substituted by the runner).
-- Tag ids a writer mints by hash (the query server's OTLP ingest: 53-bit tagId(), no stripe needed)
-- are recorded in the id registry like dense ones, so every writer gives a service the same id
-- (functions/tag-encoder/tag-ids.ts). Dense ids (stripe × 2^24 + n) still fit; the column widens.

ALTER TABLE riptide.tag_ids_local ON CLUSTER '{cluster}' MODIFY COLUMN id UInt64;

ALTER TABLE riptide.tag_ids ON CLUSTER '{cluster}' MODIFY COLUMN id UInt64;
