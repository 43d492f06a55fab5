/**
 * Per-socket capture verdicts (issue 18): once the parsers have recognised a socket's protocol, or
 * given up on it, tell the kernel so it sends less for that socket.
 *
 *   - count-only: nothing parses the socket (the registry spent its inference budget). The kernel
 *     keeps counting its messages (riptide_capture_not_sent_total{reason="unparseable"}) but copies
 *     no payload and writes no ring record. Those messages would have been shipped with no L7
 *     fields, which nothing downstream uses (the span builder skips them).
 *   - capped: a recognised protocol whose parser needs fewer bytes than the capture limit in one
 *     direction (an HTTP/1 response: its status line and headers). The kernel copies at most that
 *     many bytes (riptide_capture_capped_total counts the messages it cut shorter).
 *
 * Verdicts are keyed by the socket id the kernel gives each socket; a reused fd is a new socket
 * with a new id and starts fully captured, and the kernel deletes the verdict on close. Nothing is
 * sampled: every message still reaches a counter. Turned off for `--output` (which prints every
 * message) and `--ship-payload` (which ships every payload head); HTTP caps are lifted while HTTP
 * hook plugins are loaded (they read bodies).
 *
 * @example
 *   const v = new SocketVerdicts(program, { sizes: parseCaptureSizes('http1.response=512') });
 *   v.recognised(socketId, 'http1', 'ingress', false); // a server socket: requests arrive
 *   v.unparseable(otherSocketId);
 */
import type { Direction } from './message.ts';
import { metrics } from '../metrics.ts';
import { RT_VERDICT_CAP, RT_VERDICT_COUNT, RT_VERDICT_FULL } from './layout.generated.ts';

/** Payload bytes a protocol's parser needs per message, by message kind; absent = the capture limit. */
export type CaptureSizes = Record<string, { request?: number; response?: number }>;

/**
 * Defaults, from what the parsers read. HTTP/1 responses: the status line and the wanted headers
 * (content-length, transfer-encoding, trace headers, --http-header extras); a response head longer
 * than this is parsed as a cut head (status kept, the rest of the stream resynchronised), exactly as
 * heads longer than the capture limit always were. Requests keep the capture limit: their trace
 * context and extra headers can sit anywhere in the head.
 */
export const DEFAULT_CAPTURE_SIZES: CaptureSizes = { http1: { response: 512 } };

/** Smallest cap accepted: a status line and a few headers. */
const MIN_CAP = 64;

/**
 * Parses `proto.kind=bytes,...` (kind: request | response), e.g. `http1.response=512`; `none`
 * means no caps. Entries override the defaults; `proto.kind=0` removes one.
 */
export function parseCaptureSizes(text: string | undefined, base: CaptureSizes = DEFAULT_CAPTURE_SIZES): CaptureSizes {
  const out: CaptureSizes = {};
  for (const [k, v] of Object.entries(base)) out[k] = { ...v };
  if (text === undefined || text.trim() === '') return out;
  if (text.trim() === 'none') return {};
  for (const part of text.split(',')) {
    const m = /^\s*([a-z0-9_-]+)\.(request|response)\s*=\s*(\d+)\s*$/i.exec(part);
    if (!m) throw new Error(`capture sizes: "${part.trim()}" is not protocol.request=bytes or protocol.response=bytes`);
    const [, proto, kind, n] = m;
    const bytes = Number(n);
    if (bytes !== 0 && (bytes < MIN_CAP || bytes > 8192)) throw new Error(`capture sizes: ${proto}.${kind}=${bytes}: a cap must be 0 (none) or between ${MIN_CAP} and 8192 bytes`);
    const entry = (out[proto.toLowerCase()] ??= {});
    if (bytes === 0) delete entry[kind as 'request' | 'response'];
    else entry[kind as 'request' | 'response'] = bytes;
  }
  return out;
}

/** Where verdicts go: the loaded capture program. */
export interface VerdictTarget {
  setVerdict(socketId: number, mode: number, capEgress: number, capIngress: number): boolean;
}

export interface SocketVerdictsOptions {
  sizes?: CaptureSizes;
  /** Most sockets remembered at once (the kernel's map is an LRU of the same size). */
  maxSockets?: number;
}

const HTTP_PROTOCOLS = new Set(['http1', 'http2', 'grpc']);
/** Remembered per socket: the protocol a verdict was given for ('' = count-only), and whether it capped. */
interface Decided {
  protocol: string;
  capped: boolean;
}

const verdictsSet = metrics.counter('riptide_capture_verdicts_total', 'Per-socket capture verdicts given to the kernel (count_only, capped, full) and refused by it (refused)');

export class SocketVerdicts {
  private readonly decided = new Map<number, Decided>();
  private readonly sizes: CaptureSizes;
  private readonly maxSockets: number;

  constructor(
    private readonly target: VerdictTarget,
    options: SocketVerdictsOptions = {},
  ) {
    this.sizes = options.sizes ?? DEFAULT_CAPTURE_SIZES;
    this.maxSockets = options.maxSockets ?? 65_536;
  }

  /**
   * A message of `protocol` was parsed on the socket; `requestDir` is the direction its requests
   * travel. `hooksLive`: HTTP hook plugins are loaded (they read bodies: no HTTP caps).
   */
  recognised(socketId: number, protocol: string, requestDir: Direction, hooksLive: boolean): void {
    const d = this.decided.get(socketId);
    if (d !== undefined && d.protocol === protocol && !(d.capped && hooksLive)) return;
    const size = hooksLive && HTTP_PROTOCOLS.has(protocol) ? undefined : this.sizes[protocol];
    const req = size?.request ?? 0;
    const resp = size?.response ?? 0;
    const capped = req > 0 || resp > 0;
    if (capped) {
      const egress = requestDir === 'egress' ? req : resp;
      const ingress = requestDir === 'egress' ? resp : req;
      this.set(socketId, RT_VERDICT_CAP, egress, ingress, 'capped');
    } else if (d !== undefined) {
      // It was capped or count-only for another reading of the socket: back to full capture.
      this.set(socketId, RT_VERDICT_FULL, 0, 0, 'full');
    }
    this.remember(socketId, { protocol, capped });
  }

  /** Nothing parses the socket (the registry gave up on it until it closes). */
  unparseable(socketId: number): void {
    if (this.decided.get(socketId)?.protocol === '') return;
    this.set(socketId, RT_VERDICT_COUNT, 0, 0, 'count_only');
    this.remember(socketId, { protocol: '', capped: false });
  }

  /** Whether a count-only verdict was given for the socket. */
  isCountOnly(socketId: number): boolean {
    return this.decided.get(socketId)?.protocol === '';
  }

  /** The socket closed (the kernel already forgot its verdict). */
  closed(socketId: number): void {
    this.decided.delete(socketId);
  }

  private remember(socketId: number, d: Decided): void {
    if (this.decided.size >= this.maxSockets && !this.decided.has(socketId)) {
      // Forgetting only means the socket may be told again; the kernel's LRU keeps its own copy.
      const oldest = this.decided.keys().next().value as number;
      this.decided.delete(oldest);
    }
    this.decided.set(socketId, d);
  }

  private set(socketId: number, mode: number, egress: number, ingress: number, label: string): void {
    if (this.target.setVerdict(socketId, mode, egress, ingress)) verdictsSet.inc({ verdict: label });
    else verdictsSet.inc({ verdict: 'refused' });
  }
}
