/**
 * MySQL / MariaDB client-server protocol: the handshake (server version, the client's default
 * database; the login reported as request_type LOGIN answered by OK or ERR after any auth switch,
 * and a server that refuses the connection with an ERR greeting, such as 1040 Too many
 * connections, as a LOGIN response with no request), the compressed protocol after a login that
 * asked for it (zlib frames inflated as far as they were captured), text commands (COM_QUERY, COM_INIT_DB, …) and prepared statements (COM_STMT_PREPARE,
 * COM_STMT_EXECUTE by statement id, COM_STMT_CLOSE); replies OK / ERR / result set.
 *
 * Serial protocol: a command starts at packet sequence 0 and its reply at sequence 1, so the first
 * packet of each reply is reported and the rest of a result set is skipped. Fields:
 * request_type = COM_*, request_resource = SQL (for EXECUTE, the prepared SQL, with request_id =
 * statement id), endpoint = "verb table", request_domain = database; ERR → error code, SQLSTATE
 * class → client or server error, message → exception.
 */

import { constants as zlibConstants, inflateSync } from 'node:zlib';
import type { L7Message, ParseContext, ProtocolParser } from '../parser.ts';
import { mysqlDescriptor } from './descriptor.ts';
import { indexOfByte, isPrintable, text, u16le, u24le, u32le } from '../lib/bytes.ts';
import { requestSide, socketState } from '../lib/direction.ts';
import { sqlEndpoint, utf8Sql } from '../lib/sql.ts';
import { sqlStateClass } from '../lib/status.ts';
import { INVALID, NEED_MORE, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

const COMMANDS: Record<number, string> = {
  0x01: 'COM_QUIT', 0x02: 'COM_INIT_DB', 0x03: 'COM_QUERY', 0x04: 'COM_FIELD_LIST', 0x05: 'COM_CREATE_DB',
  0x06: 'COM_DROP_DB', 0x07: 'COM_REFRESH', 0x08: 'COM_SHUTDOWN', 0x09: 'COM_STATISTICS', 0x0a: 'COM_PROCESS_INFO',
  0x0c: 'COM_PROCESS_KILL', 0x0d: 'COM_DEBUG', 0x0e: 'COM_PING', 0x11: 'COM_CHANGE_USER', 0x12: 'COM_BINLOG_DUMP',
  0x16: 'COM_STMT_PREPARE', 0x17: 'COM_STMT_EXECUTE', 0x18: 'COM_STMT_SEND_LONG_DATA', 0x19: 'COM_STMT_CLOSE',
  0x1a: 'COM_STMT_RESET', 0x1b: 'COM_SET_OPTION', 0x1c: 'COM_STMT_FETCH', 0x1e: 'COM_BINLOG_DUMP_GTID',
  0x1f: 'COM_RESET_CONNECTION',
};
/** Commands the server never answers. */
const NO_REPLY = new Set([0x01, 0x18, 0x19]);
const MAX_STATEMENTS = 256;
const MAX_OUTSTANDING = 32;

interface MysqlSocket {
  /** Commands sent and not yet answered, oldest first. */
  outstanding: Array<{ cmd: number; sql?: string }>;
  statements: Map<number, string>;
  db?: string;
  serverVersion?: string;
  /** The connection was seen from its handshake: replies are matched to commands we saw. */
  fromStart: boolean;
  /** The client's login packet was read. */
  loggedIn?: boolean;
  /** The login was reported and its OK/ERR (after any auth switch) not yet seen. */
  loginPending?: boolean;
  /** CLIENT_COMPRESS was asked for at login: 'asked' until the login's OK, then 'on'. */
  compress?: 'asked' | 'on';
  /** Bytes of an inner packet that ran past its compressed frame, to skip in the next one. */
  innerSkip?: number;
}

/** Not a command byte: the login exchange, reported as request_type LOGIN. */
const LOGIN = 0x100;

function mysqlSocket(ctx: ParseContext): MysqlSocket {
  const ss = socketState(ctx);
  let m = ss.mysql as MysqlSocket | undefined;
  if (!m) {
    m = { outstanding: [], statements: new Map(), fromStart: false };
    ss.mysql = m;
  }
  return m;
}

function command(buf: Uint8Array, p: number, end: number, wireLen: number, ms: MysqlSocket): L7Message | undefined {
  const cmd = buf[p];
  const name = COMMANDS[cmd];
  if (!name) return undefined;
  const m: L7Message = { l7Protocol: 'mysql', msgType: 'request', requestType: name, requestLength: wireLen };
  let sql: string | undefined;
  if (cmd === 0x03 || cmd === 0x16) {
    // MySQL 8 clients may put query attributes before a COM_QUERY's text; plain clients send text straight.
    const at = cmd === 0x03 ? queryStart(buf, p + 1, end) : p + 1;
    sql = utf8Sql(buf, at < 0 ? p + 1 : at, end, end < p + wireLen);
    m.requestResource = sql;
    const ep = sqlEndpoint(sql);
    if (ep) m.endpoint = ep;
  } else if (cmd === 0x02) {
    ms.db = text(buf, p + 1, end, 64);
  } else if (cmd === 0x17 || cmd === 0x19 || cmd === 0x1a || cmd === 0x1c) {
    const id = u32le(buf, p + 1);
    if (id >= 0) {
      m.requestId = id;
      const prepared = ms.statements.get(id);
      if (prepared !== undefined) {
        m.requestResource = prepared;
        const ep = sqlEndpoint(prepared);
        if (ep) m.endpoint = ep;
      }
      if (cmd === 0x19) ms.statements.delete(id);
    }
  }
  if (ms.db) m.requestDomain = ms.db;
  if (NO_REPLY.has(cmd)) m.oneWay = true;
  else if (ms.outstanding.length < MAX_OUTSTANDING) ms.outstanding.push({ cmd, sql });
  return m;
}

/** Bytes of a binary-protocol value by MYSQL_TYPE_* (fixed sizes; 0 = length-encoded string; -1 = 1-byte length). */
function binaryValueSize(type: number): number | undefined {
  switch (type) {
    case 0x01: return 1; // TINY
    case 0x02: case 0x0d: return 2; // SHORT, YEAR
    case 0x03: case 0x09: case 0x04: return 4; // LONG, INT24, FLOAT
    case 0x05: case 0x08: return 8; // DOUBLE, LONGLONG
    case 0x07: case 0x0a: case 0x0b: case 0x0c: return -1; // TIMESTAMP, DATE, TIME, DATETIME
    case 0x0f: case 0x10: case 0xf5: case 0xf6: case 0xf7: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd: case 0xfe: case 0xff:
      return 0;
    default: return undefined;
  }
}

/**
 * Where a COM_QUERY's statement starts (`p` is just after the command byte). With
 * CLIENT_QUERY_ATTRIBUTES (MySQL 8 clients) the text follows a parameter count, a parameter set
 * count (always 1) and, when there are parameters, a null bitmap, a bind flag, their types and
 * names, and their values. A statement never starts with a control byte followed by 0x01, so the
 * shape is told apart without the handshake. -1 when the attributes cannot be walked.
 */
function queryStart(buf: Uint8Array, p: number, end: number): number {
  if (p + 2 > end) return p;
  const n = buf[p];
  if (n >= 0x20 || buf[p + 1] !== 0x01 || (n === 0x09 || n === 0x0a || n === 0x0d)) return p;
  let q = p + 2;
  if (n === 0) return q;
  const bitmap = q;
  q += (n + 7) >> 3;
  if (q >= end || buf[q] !== 1) return -1; // types not sent: cannot size the values
  q++;
  const types: number[] = [];
  for (let i = 0; i < n; i++) {
    if (q + 3 > end) return -1;
    types.push(buf[q]);
    q += 2;
    const l = buf[q];
    if (l >= 0xfb) return -1;
    q += 1 + l;
  }
  for (let i = 0; i < n; i++) {
    if ((buf[bitmap + (i >> 3)] >> (i & 7)) & 1) continue;
    const size = binaryValueSize(types[i]);
    if (size === undefined || q >= end) return -1;
    if (size > 0) q += size;
    else if (size < 0) q += 1 + buf[q];
    else {
      const l = lenenc(buf, q, end);
      if (l === undefined || l > end) return -1;
      q += (buf[q] < 0xfb ? 1 : buf[q] === 0xfc ? 3 : buf[q] === 0xfd ? 4 : 9) + l;
    }
  }
  return q <= end ? q : -1;
}

/**
 * The client's HandshakeResponse41: pick up the default database, and report the login as a
 * request (LOGIN, domain = database, attributes.user) answered by the server's OK or ERR. An
 * SSLRequest (the 32-byte head alone) is not reported: TLS follows and the login is not visible.
 */
function handshakeResponse(buf: Uint8Array, p: number, end: number, len: number, ms: MysqlSocket): L7Message | undefined {
  ms.fromStart = true;
  ms.loggedIn = true;
  const caps = u32le(buf, p);
  if (caps < 0 || (caps & 0x200) === 0 || len <= 32) return undefined; // CLIENT_PROTOCOL_41; SSLRequest
  const m: L7Message = { l7Protocol: 'mysql', msgType: 'request', requestType: 'LOGIN', requestLength: len };
  ms.loginPending = true;
  if (caps & 0x20) ms.compress = 'asked'; // CLIENT_COMPRESS
  ms.outstanding.length = 0;
  ms.outstanding.push({ cmd: LOGIN });
  const finish = (): L7Message => {
    if (ms.db) m.requestDomain = ms.db;
    return m;
  };
  let q = p + 32;
  const userEnd = indexOfByte(buf, 0, q, end);
  if (userEnd < 0) return finish();
  const user = text(buf, q, userEnd, 64);
  if (user) m.attributes = { user };
  q = userEnd + 1;
  if (caps & 0x200000) {
    // CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    const l = buf[q];
    if (l >= 0xfb) return finish();
    q += 1 + l;
  } else if (caps & 0x8000) {
    q += 1 + buf[q];
  } else {
    const z = indexOfByte(buf, 0, q, end);
    if (z < 0) return finish();
    q = z + 1;
  }
  if (caps & 0x8 && q < end) {
    const z = indexOfByte(buf, 0, q, end);
    const db = text(buf, q, z < 0 ? end : z, 64);
    if (db) ms.db = db;
  }
  return finish();
}

/** An ERR packet's fields onto `m`: code, SQLSTATE (when the `#` marker is there), message. */
function errFields(buf: Uint8Array, p: number, end: number, m: L7Message): void {
  const code = u16le(buf, p + 1);
  let msgStart = p + 3;
  let state: string | undefined;
  if (buf[msgStart] === 0x23 /* # */) {
    state = text(buf, msgStart + 1, msgStart + 6, 5);
    msgStart += 6;
  }
  if (code >= 0) m.responseCode = code;
  m.responseStatus = sqlStateClass(state);
  m.responseException = text(buf, msgStart, end, 512);
  if (state) m.attributes = { sqlstate: state };
}

/** The end of the login: OK or ERR (0xfe auth switch and 0x01 more-data continue it; undefined). */
function loginReply(buf: Uint8Array, p: number, end: number, len: number, ms: MysqlSocket): L7Message | undefined {
  if (buf[p] !== 0x00 && buf[p] !== 0xff) return undefined;
  ms.loginPending = false;
  if (ms.compress === 'asked') ms.compress = buf[p] === 0x00 ? 'on' : undefined;
  if (ms.outstanding[0]?.cmd === LOGIN) ms.outstanding.shift();
  const m: L7Message = { l7Protocol: 'mysql', msgType: 'response', requestType: 'LOGIN', responseStatus: 'ok', responseLength: len };
  if (buf[p] === 0xff) errFields(buf, p, end, m);
  return m;
}

/** A server that refuses the connection (1040 Too many connections, 1129 host blocked) greets with ERR at sequence 0. */
function isGreetingError(buf: Uint8Array, p: number, end: number): boolean {
  if (end - p < 8 || buf[p] !== 0xff) return false;
  const code = u16le(buf, p + 1);
  if (code < 1000 || code >= 5000) return false;
  const msg = buf[p + 3] === 0x23 ? p + 9 : p + 3;
  return end - msg >= 4 && isPrintable(buf, msg, end);
}

function reply(buf: Uint8Array, p: number, end: number, len: number, ms: MysqlSocket): L7Message | undefined {
  const pending = ms.outstanding.shift();
  if (!pending && ms.fromStart) return undefined;
  const first = buf[p];
  const m: L7Message = { l7Protocol: 'mysql', msgType: 'response', responseStatus: 'ok', responseLength: len };
  if (first === 0xff) {
    errFields(buf, p, end, m);
  } else if (first === 0x00 && pending?.cmd === 0x16) {
    const id = u32le(buf, p + 1);
    if (id >= 0) {
      m.requestId = id;
      if (pending.sql !== undefined) {
        if (ms.statements.size >= MAX_STATEMENTS) {
          const oldest = ms.statements.keys().next().value;
          if (oldest !== undefined) ms.statements.delete(oldest);
        }
        ms.statements.set(id, pending.sql);
      }
    }
  } else if (first === 0x00 && len >= 7) {
    const rows = lenenc(buf, p + 1, end);
    if (rows !== undefined) m.attributes = { affected_rows: String(rows) };
  }
  return m;
}

function lenenc(buf: Uint8Array, p: number, end: number): number | undefined {
  if (p >= end) return undefined;
  const b = buf[p];
  if (b < 0xfb) return b;
  if (b === 0xfc) return u16le(buf, p + 1) >= 0 ? u16le(buf, p + 1) : undefined;
  if (b === 0xfd) return u24le(buf, p + 1) >= 0 ? u24le(buf, p + 1) : undefined;
  if (b === 0xfe) {
    const lo = u32le(buf, p + 1);
    const hi = u32le(buf, p + 5);
    return lo >= 0 && hi >= 0 ? hi * 2 ** 32 + lo : undefined;
  }
  return undefined;
}

function isRequest(buf: Uint8Array, off: number, ctx: ParseContext): boolean {
  const side = requestSide(ctx);
  if (side !== undefined) return side;
  return buf[off + 3] === 0 && COMMANDS[buf[off + 4]] !== undefined && buf[off + 4] !== 0x0a;
}

/** Most inflated bytes read from one compressed frame (its head is what the fields come from). */
const MAX_INFLATED = 1 << 16;

/**
 * The compressed protocol: a 7-byte header (compressed length, sequence, uncompressed length; 0 =
 * sent as is), then zlib data holding ordinary packets. What was captured is inflated as far as it
 * goes and its packets framed as usual.
 */
function compressedFrame(buf: Uint8Array, off: number, end: number, cut: boolean, ctx: ParseContext, out: L7Message[], ms: MysqlSocket): number {
  if (end - off < 7) return cut ? INVALID : NEED_MORE;
  const clen = u24le(buf, off);
  const ulen = u24le(buf, off + 4);
  const total = 7 + clen;
  if (off + total > end && !cut && total <= 2048) return NEED_MORE;
  const payload = buf.subarray(off + 7, Math.min(end, off + total));
  let inner: Uint8Array;
  if (ulen === 0) inner = payload;
  else {
    try {
      inner = inflateSync(payload, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: MAX_INFLATED });
    } catch {
      return total; // not inflatable (cut inside the zlib header, or corrupt): skip the frame
    }
  }
  const innerCut = inner.length < (ulen === 0 ? clen : ulen);
  let q = Math.min(ms.innerSkip ?? 0, inner.length);
  ms.innerSkip = (ms.innerSkip ?? 0) - q;
  while (q < inner.length) {
    const r = plainFrame(inner, q, inner.length, true, ctx, out);
    if (r < 0) break;
    if (q + r > inner.length) {
      if (!innerCut) ms.innerSkip = q + r - inner.length;
      break;
    }
    q += r;
  }
  return total;
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    const ms = mysqlSocket(ctx);
    if (ms.compress === 'on') return compressedFrame(buf, off, end, cut, ctx, out, ms);
    return plainFrame(buf, off, end, cut, ctx, out);
  },
};

function plainFrame(buf: Uint8Array, off: number, end: number, cut: boolean, ctx: ParseContext, out: L7Message[]): number {
  if (end - off < 5) return cut ? INVALID : NEED_MORE;
  const len = u24le(buf, off);
  const seq = buf[off + 3];
  if (len === 0) return INVALID;
  const p = off + 4;
  const bodyEnd = Math.min(end, p + len);
  const ms = mysqlSocket(ctx);
  // Heads we read fields from are short; wait for them when a read splits one.
  if (p + len > end && !cut && len <= 1024) return NEED_MORE;
  if (isRequest(buf, off, ctx)) {
    if (seq === 0) {
      const m = command(buf, p, bodyEnd, len, ms);
      if (!m) return INVALID;
      out.push(m);
    } else if (seq === 1 && !ms.loggedIn) {
      const m = handshakeResponse(buf, p, bodyEnd, len, ms);
      if (m) out.push(m);
    }
  } else if (seq === 0 && buf[p] === 0xff && !ms.fromStart && isGreetingError(buf, p, bodyEnd)) {
    // Refused before any handshake: the login's only message, a response without a request.
    ms.fromStart = true;
    ms.loggedIn = true;
    const m: L7Message = { l7Protocol: 'mysql', msgType: 'response', requestType: 'LOGIN', responseStatus: 'server_error', responseLength: len };
    errFields(buf, p, bodyEnd, m);
    out.push(m);
  } else if (seq >= 2 && ms.loginPending) {
    const m = loginReply(buf, p, bodyEnd, len, ms);
    if (m) out.push(m);
  } else if (seq === 0 && buf[p] === 0x0a) {
    // Server greeting: protocol 10, version string.
    const z = indexOfByte(buf, 0, p + 1, Math.min(bodyEnd, p + 64));
    if (z < 0 || !isPrintable(buf, p + 1, z)) return INVALID;
    ms.serverVersion = text(buf, p + 1, z, 64);
    ms.fromStart = true;
  } else if (seq === 1) {
    const m = reply(buf, p, bodyEnd, len, ms);
    if (m) out.push(m);
  }
  return 4 + len;
}

export const mysqlParser: ProtocolParser = {
  name: 'mysql',
  parallel: mysqlDescriptor.pairing === 'by-id',
  descriptor: mysqlDescriptor,
  transports: ['tcp'],
  check(payload, ctx) {
    if (payload.length < 5) return false;
    const len = u24le(payload, 0);
    const seq = payload[3];
    const first = payload[4];
    if (seq !== 0 || len === 0 || len > (1 << 24) - 1) return false;
    if (len + 4 > Math.max(ctx.bytes, payload.length)) return false;
    if (first === 0x0a) {
      // Greeting: "5.5.5-10.11.6-MariaDB…\0"
      const z = indexOfByte(payload, 0, 5, Math.min(payload.length, 5 + 64));
      return z > 6 && isPrintable(payload, 5, z) && payload[5] >= 0x30 && payload[5] <= 0x39 && z + 5 <= payload.length;
    }
    if (len + 4 !== Math.max(ctx.bytes, payload.length)) return false;
    if (first === 0xff) return len <= 1024 && isGreetingError(payload, 4, 4 + len);
    if (first === 0x03 || first === 0x16) {
      const at = first === 0x03 ? queryStart(payload, 5, payload.length) : 5;
      return len >= 2 && at >= 0 && /^\s*[A-Za-z(/]/.test(text(payload, at, Math.min(payload.length, at + 32)));
    }
    if (first === 0x0e || first === 0x01) return len === 1;
    if (first === 0x17) return len >= 10;
    if (first === 0x19) return len === 5;
    if (first === 0x02) return len >= 2 && isPrintable(payload, 5, Math.min(payload.length, 4 + len));
    return false;
  },
  parse: (payload, ctx) => parseStream(payload, ctx, framer),
  newState: () => ({}),
};

