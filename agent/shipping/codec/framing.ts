/**
 * The 24-byte RTB header around a (compressed) body: writing it with its CRC-32, checking it on
 * read, and the whole-object entry points {@link encodeBatch} / {@link decodeBatch}.
 */
import { crc32 } from 'node:zlib';
import type { Batch } from '../batch.ts';
import { COMPRESSION_IDS, COMPRESSION_NAMES, DEFAULT_COMPRESSION, compressAsync, compressSync, decompress, defaultLevel } from './compression.ts';
import type { Compression, EncodeOptions } from './compression.ts';
import { BATCH_FORMAT_VERSION, BATCH_HEADER_BYTES, BATCH_MAGIC, BatchEncodeError, BatchFormatError, DEFAULT_MAX_BODY_BYTES, READABLE_FORMAT_VERSIONS } from './format.ts';
import type { BatchHeader, DecodeOptions } from './format.ts';
import { deserializeBatchBody } from './reader.ts';
import { serializeBatchBody } from './writer.ts';

function frame(body: Uint8Array, stored: Uint8Array, c: Compression, messageCount: number): Uint8Array {
  if (body.length > 0xffffffff || stored.length > 0xffffffff) throw new BatchEncodeError('batch larger than 4 GiB');
  const out = new Uint8Array(BATCH_HEADER_BYTES + stored.length);
  const v = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = BATCH_MAGIC.charCodeAt(i);
  out[4] = BATCH_FORMAT_VERSION;
  out[5] = COMPRESSION_IDS[c];
  v.setUint16(6, 0, true);
  v.setUint32(8, messageCount, true);
  v.setUint32(12, body.length, true);
  v.setUint32(16, stored.length, true);
  out.set(stored, BATCH_HEADER_BYTES);
  v.setUint32(20, crc32(out.subarray(BATCH_HEADER_BYTES), crc32(out.subarray(0, 20))), true);
  return out;
}

/** Encode a batch into one object (synchronous: for tests and tools; the agent uses {@link encodeBatchAsync}). */
export function encodeBatch(batch: Batch, options: EncodeOptions = {}): Uint8Array {
  const c = options.compression ?? DEFAULT_COMPRESSION;
  const body = serializeBatchBody(batch);
  return frame(body, compressSync(body, c, options.level ?? defaultLevel(c)), c, batch.messages.length);
}

/** Frame a body from {@link BatchBodyStream}, compressing on the libuv thread pool. */
export async function encodeBodyAsync(body: Uint8Array, messageCount: number, options: EncodeOptions = {}): Promise<Uint8Array> {
  const c = options.compression ?? DEFAULT_COMPRESSION;
  return frame(body, await compressAsync(body, c, options.level ?? defaultLevel(c)), c, messageCount);
}

/** Encode a batch, compressing on the libuv thread pool so the event loop keeps draining capture. */
export async function encodeBatchAsync(batch: Batch, options: EncodeOptions = {}): Promise<Uint8Array> {
  const c = options.compression ?? DEFAULT_COMPRESSION;
  const body = serializeBatchBody(batch);
  return frame(body, await compressAsync(body, c, options.level ?? defaultLevel(c)), c, batch.messages.length);
}

/** Validate and read the 24-byte header (checksum included); throws {@link BatchFormatError}. */
export function readBatchHeader(bytes: Uint8Array, options: DecodeOptions = {}): BatchHeader {
  if (bytes.length < BATCH_HEADER_BYTES) throw new BatchFormatError('truncated', `${bytes.length} bytes, shorter than the ${BATCH_HEADER_BYTES}-byte header`);
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== BATCH_MAGIC.charCodeAt(i)) throw new BatchFormatError('bad_magic', `not a Riptide batch (first bytes ${Buffer.from(bytes.subarray(0, 4)).toString('hex')})`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = bytes[4];
  if (!READABLE_FORMAT_VERSIONS.includes(version)) throw new BatchFormatError('unsupported_version', `format version ${version}, this reader knows ${READABLE_FORMAT_VERSIONS.join(', ')}`);
  const compression = COMPRESSION_NAMES[bytes[5]];
  if (compression === undefined) throw new BatchFormatError('bad_header', `unknown compression id ${bytes[5]}`);
  const flags = v.getUint16(6, true);
  if (flags !== 0) throw new BatchFormatError('bad_header', `unknown flags ${flags}`);
  const messageCount = v.getUint32(8, true);
  const bodyBytes = v.getUint32(12, true);
  const storedBytes = v.getUint32(16, true);
  const actual = bytes.length - BATCH_HEADER_BYTES;
  if (actual < storedBytes) throw new BatchFormatError('truncated', `body has ${actual} of ${storedBytes} bytes`);
  if (actual > storedBytes) throw new BatchFormatError('bad_header', `${actual - storedBytes} bytes after the body`);
  const want = v.getUint32(20, true);
  const got = crc32(bytes.subarray(BATCH_HEADER_BYTES), crc32(bytes.subarray(0, 20)));
  if (want !== got) throw new BatchFormatError('bad_checksum', `CRC-32 ${got.toString(16)} does not match ${want.toString(16)}`);
  const max = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (bodyBytes > max) throw new BatchFormatError('too_large', `body of ${bodyBytes} bytes exceeds the ${max}-byte limit`);
  if (compression === 'none' && bodyBytes !== storedBytes) throw new BatchFormatError('bad_header', 'uncompressed body with two different lengths');
  return { version, compression, messageCount, bodyBytes, storedBytes };
}

/** Decode one batch object. Throws {@link BatchFormatError} (never anything else) on bad input. */
export function decodeBatch(bytes: Uint8Array, options: DecodeOptions = {}): Batch {
  const h = readBatchHeader(bytes, options);
  const body = decompress(bytes.subarray(BATCH_HEADER_BYTES), h);
  let batch: Batch;
  try {
    batch = deserializeBatchBody(body, h.version);
  } catch (err) {
    if (err instanceof BatchFormatError) throw err;
    throw new BatchFormatError('malformed', (err as Error).message);
  }
  if (batch.messages.length !== h.messageCount) throw new BatchFormatError('malformed', `header counts ${h.messageCount} messages, body holds ${batch.messages.length}`);
  return batch;
}
