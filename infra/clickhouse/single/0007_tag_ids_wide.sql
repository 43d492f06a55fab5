-- Tag ids a writer mints by hash (the query server's OTLP ingest: 53-bit tagId(), no stripe needed)
-- are recorded in the id registry like dense ones, so every writer gives a service the same id
-- (functions/tag-encoder/tag-ids.ts). Dense ids (stripe × 2^24 + n) still fit; the column widens.
ALTER TABLE riptide.tag_ids MODIFY COLUMN id UInt64;
