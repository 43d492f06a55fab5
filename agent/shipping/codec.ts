/**
 * The batch object format ("RTB", version 4): how a {@link Batch} is laid out in object storage.
 * Version 2 added two L7 fields (`oneWay`, `version`); version 3 the message's `handoffTraceId`
 * (after `syscallTraceId`); version 4 the network fields of issue 19 after it (`observationPoint`,
 * `tcpRetransmits`, `tcpSrttUs`, `connectFailed`) and the batch's protocol descriptor section.
 * Readers still read versions 1 to 3.
 *
 * Chosen by measurement (see docs/SHIPPING.md and `npx tsx test/bench/batch-codec.bench.ts`):
 * a compact row format with an inline string dictionary, delta-coded timestamps and a socket
 * tuple table, then compressed with brotli at quality 1 (node:zlib). Everything the reader does is bounds-checked:
 * garbage yields a {@link BatchFormatError}, never a crash, a hang or a huge allocation.
 *
 * Object layout (little-endian):
 *
 *   offset size
 *   0      4    magic "RPTB"
 *   4      1    format version (4; 1 to 3 still read)
 *   5      1    compression: 0 none, 1 deflate-raw, 2 gzip, 3 brotli
 *   6      2    flags (0; readers reject unknown bits)
 *   8      4    message count (lets a reader size work without decoding)
 *   12     4    body length before compression
 *   16     4    body length as stored
 *   20     4    CRC-32 of bytes 0..20 followed by the stored body
 *   24     …    stored body
 *
 * The body: batch fields, then messages, processes and closed sockets. Strings are references into
 * a dictionary built while reading (ref 0 = a new string follows, ref k = the (k-1)th string), so a
 * process name or an IP is spelled once per batch. The socket 5-tuple is likewise spelled once per
 * socket. Timestamps are zigzag deltas from the previous message. Numbers are LEB128 varints.
 *
 * @example
 *   const bytes = encodeBatch(batch);            // Uint8Array, ready for store.put
 *   const again = decodeBatch(bytes);            // throws BatchFormatError on corruption
 *
 * The code is one module per concern, re-exported here (importers use this file):
 *   codec/format.ts       constants, errors, wire enumerations
 *   codec/compression.ts  the body's compression (node:zlib)
 *   codec/writer.ts       body writer (BatchBodyStream, serializeBatchBody)
 *   codec/reader.ts       body reader (deserializeBatchBody)
 *   codec/framing.ts      the header and CRC; encodeBatch / decodeBatch
 */
export { BATCH_FORMAT_VERSION, BATCH_HEADER_BYTES, BATCH_MAGIC, BatchEncodeError, BatchFormatError, DEFAULT_MAX_BODY_BYTES, READABLE_FORMAT_VERSIONS } from './codec/format.ts';
export type { BatchFormatReason, BatchHeader, DecodeOptions } from './codec/format.ts';
export type { Compression, EncodeOptions } from './codec/compression.ts';
export { BatchBodyStream, serializeBatchBody } from './codec/writer.ts';
export type { BatchFields } from './codec/writer.ts';
export { deserializeBatchBody } from './codec/reader.ts';
export { decodeBatch, encodeBatch, encodeBatchAsync, encodeBodyAsync, readBatchHeader } from './codec/framing.ts';
