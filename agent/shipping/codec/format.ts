/**
 * The RTB format's constants, errors and wire enumerations: what the writer, the reader and the
 * framing share. The layout itself is documented in ../codec.ts.
 */
import type { AddressFamily, Direction, L4Protocol, SocketRole, SyscallName } from '../../capture/message.ts';
import type { ProtocolDescriptor, ResponseStatus } from '../../protocols/parser.ts';
import { RESPONSE_STATUSES } from '../../contract/fields.ts';

export const BATCH_MAGIC = 'RPTB';
export const BATCH_FORMAT_VERSION = 4;
/** Every format version this reader decodes (a writer only writes {@link BATCH_FORMAT_VERSION}). */
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2, 3, 4];
export const BATCH_HEADER_BYTES = 24;
/** Readers refuse bodies that claim to be larger than this unless told otherwise (allocation guard). */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024;

/** How a body is stored (header byte 5; ids in compression.ts). */
export type Compression = 'none' | 'deflate' | 'gzip' | 'brotli';

export interface DecodeOptions {
  /** Refuse bodies larger than this before allocating (default {@link DEFAULT_MAX_BODY_BYTES}). */
  maxBodyBytes?: number;
}

export type BatchFormatReason =
  | 'truncated'
  | 'bad_magic'
  | 'unsupported_version'
  | 'bad_header'
  | 'bad_checksum'
  | 'too_large'
  | 'bad_compression'
  | 'malformed';

/** A batch object that cannot be read. `reason` is machine-readable; the message is one clear line. */
export class BatchFormatError extends Error {
  override readonly name = 'BatchFormatError';
  constructor(
    readonly reason: BatchFormatReason,
    detail: string,
    /** The object key, when the error came from reading a store. */
    readonly key?: string,
  ) {
    super(`${key ? `batch ${key}: ` : 'batch: '}${reason.replace(/_/g, ' ')}: ${detail}`);
  }

  /** The same error, attributed to an object key. */
  withKey(key: string): BatchFormatError {
    return new BatchFormatError(this.reason, this.message.replace(/^batch[^:]*: [^:]*: /, ''), key);
  }
}

/** A batch that cannot be written (a field out of its documented range). */
export class BatchEncodeError extends Error {
  override readonly name = 'BatchEncodeError';
}

export interface BatchHeader {
  version: number;
  compression: Compression;
  messageCount: number;
  bodyBytes: number;
  storedBytes: number;
}

// Enumerations on the wire. Append only: indexes are part of format version 1.

export const SYSCALLS: SyscallName[] = ['write', 'writev', 'sendto', 'sendmsg', 'sendmmsg', 'read', 'readv', 'recvfrom', 'recvmsg', 'recvmmsg'];
export const SYSCALL_IDS = new Map<string, number>(SYSCALLS.map((s, i) => [s, i]));
export const DIRECTIONS: Direction[] = ['egress', 'ingress'];
export const FAMILIES: AddressFamily[] = ['ipv4', 'ipv6'];
export const L4S: L4Protocol[] = ['tcp', 'udp'];
export const ROLES: SocketRole[] = ['unknown', 'client', 'server'];
export const STATUSES: readonly ResponseStatus[] = RESPONSE_STATUSES;

/** Descriptor `pairing` values by wire index (format 4 descriptor section). Append only. */
export const PAIRINGS: ReadonlyArray<ProtocolDescriptor['pairing']> = ['in-order', 'by-id'];

export function enumId<T extends string>(values: readonly T[], v: T, field: string): number {
  const i = values.indexOf(v);
  if (i < 0) throw new BatchEncodeError(`${field}: unknown value ${JSON.stringify(v)}`);
  return i;
}
