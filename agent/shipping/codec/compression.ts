/**
 * The compressions an RTB body may be stored with (header byte 5), and the one place that calls
 * node:zlib for batches. Decompression is capped at the length the header declares.
 */
import { brotliCompress, brotliCompressSync, brotliDecompressSync, constants as zc, deflateRaw, deflateRawSync, gunzipSync, gzip, gzipSync, inflateRawSync } from 'node:zlib';
import { promisify } from 'node:util';
import { BatchFormatError } from './format.ts';
import type { BatchHeader, Compression } from './format.ts';

export type { Compression } from './format.ts';
/** Header byte 5. Append only. */
export const COMPRESSION_IDS: Readonly<Record<Compression, number>> = { none: 0, deflate: 1, gzip: 2, brotli: 3 };
export const COMPRESSION_NAMES: readonly Compression[] = ['none', 'deflate', 'gzip', 'brotli'];

export interface EncodeOptions {
  /** Default 'brotli' at quality 1: the smallest objects for the least CPU in our measurements. */
  compression?: Compression;
  /** zlib level (1..9) or brotli quality (0..11). Default 1. */
  level?: number;
}

export const DEFAULT_COMPRESSION: Compression = 'brotli';

export function defaultLevel(_c: Compression): number {
  return 1;
}

export function compressSync(body: Uint8Array, c: Compression, level: number): Uint8Array {
  switch (c) {
    case 'none':
      return body;
    case 'deflate':
      return deflateRawSync(body, { level });
    case 'gzip':
      return gzipSync(body, { level });
    case 'brotli':
      return brotliCompressSync(body, { params: { [zc.BROTLI_PARAM_QUALITY]: level, [zc.BROTLI_PARAM_SIZE_HINT]: body.length } });
  }
}

const deflateRawAsync = promisify(deflateRaw);
const gzipAsync = promisify(gzip);
const brotliAsync = promisify(brotliCompress);

export async function compressAsync(body: Uint8Array, c: Compression, level: number): Promise<Uint8Array> {
  switch (c) {
    case 'none':
      return body;
    case 'deflate':
      return deflateRawAsync(body, { level });
    case 'gzip':
      return gzipAsync(body, { level });
    case 'brotli':
      return brotliAsync(body, { params: { [zc.BROTLI_PARAM_QUALITY]: level, [zc.BROTLI_PARAM_SIZE_HINT]: body.length } });
  }
}

/** The stored body, decompressed; throws {@link BatchFormatError} when it does not decompress to the declared length. */
export function decompress(stored: Uint8Array, h: BatchHeader): Uint8Array {
  if (h.compression === 'none') return stored;
  // maxOutputLength caps the allocation at what the header declared (+1 to detect a lie).
  const opts = { maxOutputLength: Math.max(1, h.bodyBytes + 1) };
  let out: Buffer;
  try {
    if (h.compression === 'deflate') out = inflateRawSync(stored, opts);
    else if (h.compression === 'gzip') out = gunzipSync(stored, opts);
    else out = brotliDecompressSync(stored, opts);
  } catch (err) {
    throw new BatchFormatError('bad_compression', `${h.compression} stream does not decompress: ${(err as Error).message}`);
  }
  if (out.length !== h.bodyBytes) throw new BatchFormatError('bad_compression', `body is ${out.length} bytes, header says ${h.bodyBytes}`);
  // A plain Uint8Array view: payloads handed to readers are Uint8Array, as the contract says.
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

