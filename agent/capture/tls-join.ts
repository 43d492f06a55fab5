/**
 * Joins the plaintext the TLS uprobes saw (one record per SSL_read/SSL_write call, without a
 * socket) to the data syscalls that carried its ciphertext, and keeps that ciphertext away from
 * the protocol parsers.
 *
 * The rule, per thread:
 *   - ingress plaintext belongs to the thread's previous ingress ciphertext syscall (OpenSSL reads
 *     inside SSL_read; Node's memory BIO is fed by the read just before);
 *   - egress plaintext belongs to the first egress ciphertext syscall of the thread that started
 *     during the SSL_write call (OpenSSL with a socket BIO: nginx, curl, Python), else to the next
 *     one after it (Node writes what its memory BIO holds once SSL_write returned).
 * The joined message is the ciphertext syscall's (socket, tuple, role, times, syscall trace id)
 * carrying the plaintext head and length, with the TCP sequence of the TLS record the plaintext
 * came in: the TLS record headers seen in the ciphertext heads mark where each record starts, so
 * both ends of a connection give the same request the same sequence number even when one of them
 * reads the 5-byte record header and the body in two syscalls.
 *
 * A TCP socket is TLS once one of its syscalls carries a TLS record header; its ciphertext then
 * never reaches the parsers (whether or not plaintext is captured for it).
 */
import type { CapturedMessage, Direction } from './message.ts';
import { metrics } from '../metrics.ts';

/** One SSL_* call's plaintext, as decoded from an rt_tls_event. */
export interface TlsPlaintext {
  pid: number;
  tid: number;
  enterNs: bigint;
  exitNs: bigint;
  /** The SSL * (one per connection in the process). */
  ssl: bigint;
  direction: Direction;
  /** Plaintext bytes the call moved. */
  bytes: number;
  payload: Uint8Array;
  processName: string;
}

interface TlsRecordSpan {
  start: number;
  /** Sequence after the record (u32 arithmetic). */
  end: number;
  consumed: boolean;
}

interface DirectionState {
  /** Application-data records seen, oldest first (bounded). */
  records: TlsRecordSpan[];
  /** Where the next record header is expected, when known. */
  next: number | undefined;
}

interface SocketTls {
  egress: DirectionState;
  ingress: DirectionState;
}

interface ThreadTls {
  lastIngress: CapturedMessage | undefined;
  /** Plaintext bytes already joined to lastIngress (the fallback offset). */
  lastIngressUsed: number;
  recentEgress: Array<{ m: CapturedMessage; used: number }>;
  pendingEgress: TlsPlaintext[];
  /**
   * Syscall-trace ids the kernel gave to TLS reads that carried no plaintext (handshake): an egress
   * after them reuses such an id, where without TLS it would reuse the request's.
   */
  handshakeTraces: Set<number>;
  /** Syscall-trace id of the last read that carried plaintext (0 before one). */
  lastPlainTrace: number;
}

const MAX_RECORDS = 64;
const MAX_RECENT = 8;
const MAX_PENDING = 8;
/** Egress plaintext not joined within this long is dropped (its ciphertext went elsewhere or was filtered out). */
const PENDING_NS = 2_000_000_000n;
const MAX_SOCKETS = 65_536;
/** Threads with TLS state (bounded: each may hold a few payload views, which keep their slab alive). */
const MAX_THREADS = 4096;

const TLS_CONTENT_CHANGE_CIPHER = 20;
const TLS_CONTENT_APPDATA = 23;
const TLS_CONTENT_HEARTBEAT = 24;

const tlsMessages = metrics.counter('riptide_tls_messages_total', 'TLS records of capture: plaintext joined to its socket, ciphertext kept from the parsers, plaintext dropped unjoined');

/** A TLS record header (content type, version 3.1–3.4, length ≤ 2^14 + 2048) at `off`. */
export function isTlsRecordHeader(b: Uint8Array, off = 0): boolean {
  if (off + 5 > b.length) return false;
  const type = b[off];
  if (type < TLS_CONTENT_CHANGE_CIPHER || type > TLS_CONTENT_HEARTBEAT) return false;
  if (b[off + 1] !== 3 || b[off + 2] < 1 || b[off + 2] > 4) return false;
  const len = (b[off + 3] << 8) | b[off + 4];
  return len > 0 && len <= 16384 + 2048;
}

/**
 * The first syscall of a TLS socket: a record header, or the first bytes of a handshake record
 * when fewer than five were read (nginx peeks at one byte to tell TLS from plain HTTP).
 */
function startsTls(m: CapturedMessage): boolean {
  if (isTlsRecordHeader(m.payload)) return true;
  const b = m.payload;
  return m.bytes < 5 && b.length === m.bytes && b.length >= 1 && b[0] === 22 && (b.length < 2 || b[1] === 3);
}

/** (a - b) mod 2^32. */
function diff(a: number, b: number): number {
  return (a - b) >>> 0;
}

export class TlsJoiner {
  private readonly sockets = new Map<number, SocketTls>();
  private readonly threads = new Map<number, ThreadTls>();

  constructor(
    /** Where joined messages go (the capture sink). */
    private readonly emit: (m: CapturedMessage) => void,
    /** Told when a process carries TLS records (so its libraries can be looked for). */
    private readonly onTlsProcess: (pid: number) => void = () => {},
  ) {}

  /** Number of sockets known to carry TLS. */
  get tlsSockets(): number {
    return this.sockets.size;
  }

  /**
   * A data syscall from the syscall path. Returns true when it is TLS ciphertext (the caller then
   * does not hand it to the parsers); joined plaintext may be emitted from here.
   */
  onSyscall(m: CapturedMessage): boolean {
    if (m.l4 !== 'tcp') return false;
    let sock = this.sockets.get(m.socketId);
    if (!sock) {
      if (!startsTls(m)) return false;
      if (this.sockets.size >= MAX_SOCKETS) this.sockets.clear();
      sock = { egress: { records: [], next: undefined }, ingress: { records: [], next: undefined } };
      this.sockets.set(m.socketId, sock);
      this.onTlsProcess(m.pid);
    }
    scanRecords(m.direction === 'egress' ? sock.egress : sock.ingress, m);
    tlsMessages.inc({ kind: 'ciphertext' });
    const handshake = handshakeRecords(m.direction === 'egress' ? sock.egress : sock.ingress, m);
    if (handshake) this.emit(handshake);

    const t = this.thread(m.tid);
    if (m.direction === 'ingress') {
      t.lastIngress = m;
      t.lastIngressUsed = 0;
      if (t.handshakeTraces.size >= 64) t.handshakeTraces.clear();
      t.handshakeTraces.add(m.syscallTraceId);
    } else {
      const entry = { m, used: 0 };
      t.recentEgress.push(entry);
      if (t.recentEgress.length > MAX_RECENT) t.recentEgress.shift();
      // Node: plaintext went into the memory BIO first, this write carries it.
      const pending = t.pendingEgress.splice(0);
      for (const p of pending) {
        if (m.enterNs - p.exitNs > PENDING_NS) {
          tlsMessages.inc({ kind: 'unjoined' });
          continue;
        }
        this.join(p, entry, sock.egress, t);
      }
    }
    return true;
  }

  /** A plaintext record from the TLS uprobes. */
  onPlaintext(p: TlsPlaintext): void {
    const t = this.thread(p.tid);
    if (p.direction === 'ingress') {
      const c = t.lastIngress;
      const sock = c && this.sockets.get(c.socketId);
      if (!c || !sock) {
        tlsMessages.inc({ kind: 'unjoined' });
        return;
      }
      const entry = { m: c, used: t.lastIngressUsed };
      this.join(p, entry, sock.ingress, t);
      t.lastIngressUsed = entry.used;
      return;
    }
    // OpenSSL on a socket BIO wrote the ciphertext while SSL_write ran.
    const inside = t.recentEgress.find((e) => e.m.enterNs >= p.enterNs && e.m.enterNs <= p.exitNs);
    const sock = inside && this.sockets.get(inside.m.socketId);
    if (inside && sock) {
      this.join(p, inside, sock.egress, t);
      return;
    }
    // Unjoined plaintext of threads whose sockets are filtered out must not pile up.
    while (t.pendingEgress.length > 0 && p.exitNs - t.pendingEgress[0].exitNs > PENDING_NS) {
      t.pendingEgress.shift();
      tlsMessages.inc({ kind: 'unjoined' });
    }
    t.pendingEgress.push(p);
    if (t.pendingEgress.length > MAX_PENDING) {
      t.pendingEgress.shift();
      tlsMessages.inc({ kind: 'unjoined' });
    }
  }

  onSocketClosed(socketId: number): void {
    this.sockets.delete(socketId);
  }

  private thread(tid: number): ThreadTls {
    let t = this.threads.get(tid);
    if (!t) {
      if (this.threads.size >= MAX_THREADS) this.threads.clear();
      t = { lastIngress: undefined, lastIngressUsed: 0, recentEgress: [], pendingEgress: [], handshakeTraces: new Set(), lastPlainTrace: 0 };
      this.threads.set(tid, t);
    }
    return t;
  }

  private join(p: TlsPlaintext, c: { m: CapturedMessage; used: number }, dir: DirectionState, t: ThreadTls): void {
    const m = c.m;
    // The thread's flow: a request read over TLS links to the calls made after it, even when a
    // TLS handshake with the downstream service (reads of its own) came in between.
    let traceId = m.syscallTraceId;
    if (p.direction === 'ingress') {
      t.handshakeTraces.delete(traceId);
      t.lastPlainTrace = traceId;
    } else if (t.lastPlainTrace !== 0 && t.handshakeTraces.has(traceId)) {
      traceId = t.lastPlainTrace;
    }
    let seq: number | undefined;
    // The application-data record overlapping this syscall's bytes whose length fits the plaintext
    // (TLS 1.3 sends its Finished and session tickets as application data too, and Node coalesces
    // tickets with the first response), else the first unconsumed overlapping one.
    let pick = -1;
    let first = -1;
    let bestFit = 0;
    for (let i = 0; i < dir.records.length; i++) {
      const r = dir.records[i];
      if (r.consumed || !overlaps(r, m)) continue;
      if (first < 0) first = i;
      const f = fitsPlaintext(r, p.bytes);
      if (f > bestFit) {
        bestFit = f;
        pick = i;
        if (f === 2) break;
      }
    }
    if (pick < 0) pick = first;
    if (pick >= 0) {
      seq = dir.records[pick].start;
      for (let j = 0; j <= pick; j++) dir.records[j].consumed = true;
    }
    seq ??= (m.tcpSeq + c.used) >>> 0;
    c.used += p.bytes;
    tlsMessages.inc({ kind: 'plaintext' });
    this.emit({
      ...m,
      processName: p.processName || m.processName,
      tcpSeq: seq,
      syscallTraceId: traceId,
      bytes: p.bytes,
      payload: p.payload,
      tls: true,
    });
  }
}

/** Whether the record holds some of the bytes of syscall `m`. */
function overlaps(r: TlsRecordSpan, m: CapturedMessage): boolean {
  const endAfterStart = diff(r.end, m.tcpSeq);
  const startBeforeEnd = diff((m.tcpSeq + m.bytes) >>> 0, r.start);
  return endAfterStart > 0 && endAfterStart <= 0x7fffffff && startBeforeEnd > 0 && startBeforeEnd <= 0x7fffffff;
}

/**
 * How well a record's length fits `n` plaintext bytes: 2 for the AEAD overheads (TLS 1.3 17,
 * TLS 1.2 AES-GCM 24, ChaCha20-Poly1305 16), 1 for what CBC with an HMAC may add (up to ~80),
 * 0 otherwise. A plaintext larger than one record (2^14) starts in a full one.
 */
function fitsPlaintext(r: TlsRecordSpan, n: number): number {
  const body = diff(r.end, r.start) - 5;
  const overhead = body - Math.min(n, 16384);
  if (overhead === 16 || overhead === 17 || overhead === 24) return 2;
  return overhead >= 16 && overhead <= 80 ? 1 : 0;
}

/** Notes the application-data records whose headers this syscall's captured head shows. */
function scanRecords(dir: DirectionState, m: CapturedMessage): void {
  let off: number | undefined;
  if (dir.next !== undefined && diff(dir.next, m.tcpSeq) < m.bytes) off = diff(dir.next, m.tcpSeq);
  else if (isTlsRecordHeader(m.payload)) off = 0;
  else {
    // a body read (the header came in the previous syscall) or a record spanning syscalls
    if (dir.next !== undefined && diff(dir.next, m.tcpSeq) > 0x7fffffff) dir.next = undefined;
    return;
  }
  dir.next = undefined;
  while (off < m.bytes) {
    if (!isTlsRecordHeader(m.payload, off)) return; // header beyond the captured head: lose track
    const len = (m.payload[off + 3] << 8) | m.payload[off + 4];
    const start = (m.tcpSeq + off) >>> 0;
    if (m.payload[off] === TLS_CONTENT_APPDATA) {
      dir.records.push({ start, end: (start + 5 + len) >>> 0, consumed: false });
      if (dir.records.length > MAX_RECORDS) dir.records.shift();
    }
    off += 5 + len;
  }
  dir.next = (m.tcpSeq + off) >>> 0;
}

/** Where the record layer of one direction stands, for {@link handshakeRecords}. */
interface RecordLayer {
  /** TCP sequence of the next record header. */
  next: number | undefined;
  /** Content type of the record that may run on into the next syscall. */
  type: number;
  /** Past the handshake (ChangeCipherSpec, application data) or lost track: nothing more is passed on. */
  done: boolean;
}
const recordLayers = new WeakMap<DirectionState, RecordLayer>();
const TLS_CONTENT_ALERT = 21;
const TLS_CONTENT_HANDSHAKE = 22;

/**
 * The cleartext part of a TLS socket's ciphertext syscall, for the `tls` parser
 * (agent/protocols/tls): the handshake (22) and alert (21) records a direction sends before its
 * first ChangeCipherSpec or application-data record, as the syscall's leading bytes (a record read
 * header first and body next is followed across syscalls by sequence). Everything from the first
 * other record on is ciphertext and never passed on, nor is anything after it. Returns a message
 * of that syscall (same socket, tuple, sequence) holding only those bytes, or undefined.
 */
function handshakeRecords(dir: DirectionState, m: CapturedMessage): CapturedMessage | undefined {
  let st = recordLayers.get(dir);
  if (st === undefined) {
    // nginx peeks at one byte before the read that returns the record header
    if (m.bytes < 5) return undefined;
    st = { next: undefined, type: 0, done: false };
    recordLayers.set(dir, st);
  }
  if (st.done) return undefined;
  const b = m.payload;
  let off = 0;
  let keep = 0;
  if (st.next !== undefined) {
    const d = diff(st.next, m.tcpSeq);
    if (d > 0x7fffffff) {
      st.done = true; // this syscall starts past where the next header was due
      return undefined;
    }
    if (d > 0) {
      // the rest of a record begun in an earlier syscall
      if (st.type !== TLS_CONTENT_HANDSHAKE && st.type !== TLS_CONTENT_ALERT) {
        st.done = true;
        return undefined;
      }
      off = d;
      keep = Math.min(d, m.bytes);
    }
  }
  while (off < m.bytes) {
    const type = b[off];
    if (!isTlsRecordHeader(b, off) || (type !== TLS_CONTENT_HANDSHAKE && type !== TLS_CONTENT_ALERT)) {
      st.done = true;
      break;
    }
    st.type = type;
    off += 5 + ((b[off + 3] << 8) | b[off + 4]);
    keep = Math.min(off, m.bytes);
  }
  st.next = (m.tcpSeq + off) >>> 0;
  if (keep === 0) return undefined;
  tlsMessages.inc({ kind: 'handshake' });
  return { ...m, bytes: keep, payload: b.subarray(0, Math.min(keep, b.length)) };
}
