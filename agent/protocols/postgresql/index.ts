/**
 * PostgreSQL frontend/backend protocol v3: startup (SSLRequest, StartupMessage with user and
 * database), simple query ('Q'), extended query (Parse/Bind/Execute up to Sync, named statements
 * remembered per socket), and the backend's replies up to ReadyForQuery.
 *
 * Serial protocol. One request per Query or Sync (or startup), one response per ReadyForQuery — or
 * earlier, when the capture limit cuts a reply so its ReadyForQuery will not be seen. ErrorResponse:
 * SQLSTATE → attributes.sqlstate and the status class, message → exception.
 */

import type { L7Message, ParseContext, ProtocolParser } from '../parser.ts';
import { postgresqlDescriptor } from './descriptor.ts';
import { i32be, indexOfByte, isPrintable, text, u32be } from '../lib/bytes.ts';
import { requestSide, socketState } from '../lib/direction.ts';
import { sqlEndpoint, utf8Sql } from '../lib/sql.ts';
import { sqlStateClass } from '../lib/status.ts';
import { INVALID, NEED_MORE, UNKNOWN_LENGTH, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

const PROTOCOL_3 = 196608;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const MAX_STATEMENTS = 256;
const FRONTEND_TYPES = new Set('QPBEDSCHFXpdcf'.split('').map((c) => c.charCodeAt(0)));
const BACKEND_TYPES = new Set('RSKZTDC123nstIENAGHWdcVv'.split('').map((c) => c.charCodeAt(0)));

interface PgSocket {
  db?: string;
  user?: string;
  statements: Map<string, string>;
  /** The client asked for SSL/GSS: the next backend byte is a one-byte answer. */
  awaitingSslAnswer: boolean;
  /** Untyped startup-phase messages are still possible. */
  startup: boolean;
  /** Requests sent that expect a reply: lets a reply cut short (no ReadyForQuery seen) end its cycle. */
  sent: number;
}

interface FrontendBatch {
  sql?: string;
  parsed: boolean;
  executes: number;
}

interface BackendCycle {
  emitted: boolean;
  /** `sent` when this cycle's reply was reported. */
  emittedAt?: number;
  error?: { code?: string; message?: string; severity?: string };
  tag?: string;
  any: boolean;
}

function pgSocket(ctx: ParseContext): PgSocket {
  const ss = socketState(ctx);
  let s = ss.pg as PgSocket | undefined;
  if (!s) {
    s = { statements: new Map(), awaitingSslAnswer: false, startup: true, sent: 0 };
    ss.pg = s;
  }
  return s;
}

function cstring(buf: Uint8Array, p: number, end: number, max = 512): [string, number] | undefined {
  const z = indexOfByte(buf, 0, p, end);
  if (z < 0) return undefined;
  return [text(buf, p, z, max), z + 1];
}

/** A NUL-terminated statement, or what the capture kept of it (cut on a character boundary). */
function sqlCString(buf: Uint8Array, p: number, stop: number, bodyEnd: number): string {
  const z = indexOfByte(buf, 0, p, stop);
  return z >= 0 ? utf8Sql(buf, p, z, false) : utf8Sql(buf, p, stop, stop < bodyEnd);
}

function request(type: string, pg: PgSocket, sql?: string): L7Message {
  pg.sent++;
  const m: L7Message = { l7Protocol: 'postgresql', msgType: 'request', requestType: type };
  if (sql !== undefined) {
    m.requestResource = sql;
    const ep = sqlEndpoint(sql);
    if (ep) m.endpoint = ep;
  }
  if (pg.db) m.requestDomain = pg.db;
  return m;
}

function frontend(buf: Uint8Array, off: number, end: number, cut: boolean, ctx: ParseContext, out: L7Message[]): number {
  const pg = pgSocket(ctx);
  if (end - off < 5) return cut ? INVALID : NEED_MORE;
  if (buf[off] === 0 && pg.startup) {
    // Untyped: length, then a protocol code.
    if (end - off < 8) return cut ? INVALID : NEED_MORE;
    const len = u32be(buf, off);
    const code = u32be(buf, off + 4);
    if (len < 8 || len > 10240) return INVALID;
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      if (len !== 8) return INVALID;
      pg.awaitingSslAnswer = true;
      out.push(request(code === SSL_REQUEST ? 'SSL_REQUEST' : 'GSSENC_REQUEST', pg));
      return 8;
    }
    if (code === CANCEL_REQUEST) {
      if (len !== 16) return INVALID;
      const m = request('CANCEL', pg);
      m.oneWay = true;
      out.push(m);
      return 16;
    }
    if (code !== PROTOCOL_3) return INVALID;
    if (off + len > end && !cut) return NEED_MORE;
    let p = off + 8;
    const stop = Math.min(end, off + len);
    for (let i = 0; i < 32 && p < stop; i++) {
      const k = cstring(buf, p, stop, 64);
      if (!k || k[0] === '') break;
      const v = cstring(buf, k[1], stop, 128);
      if (!v) break;
      if (k[0] === 'database') pg.db = v[0];
      else if (k[0] === 'user') pg.user = v[0];
      p = v[1];
    }
    pg.db ??= pg.user; // the server's default
    pg.startup = false;
    const m = request('STARTUP', pg);
    if (pg.user) m.attributes = { user: pg.user };
    out.push(m);
    return len;
  }
  const type = buf[off];
  if (!FRONTEND_TYPES.has(type)) return INVALID;
  const len = u32be(buf, off + 1);
  if (len < 4 || len > 0x3fffffff) return INVALID;
  pg.startup = false;
  const bodyEnd = off + 1 + len;
  const stop = Math.min(end, bodyEnd);
  // Read fields only from whole messages (or what the capture kept); wait for a split short one.
  if (bodyEnd > end && !cut && len <= 2048) return NEED_MORE;
  const batch = (ctx.state.batch ??= { parsed: false, executes: 0 }) as FrontendBatch;
  const p = off + 5;
  switch (type) {
    case 0x51: {
      // Q
      const sql = sqlCString(buf, p, stop, bodyEnd);
      out.push(request('QUERY', pg, sql));
      break;
    }
    case 0x50: {
      // P: statement name, query, parameter types
      const name = cstring(buf, p, stop, 128);
      if (!name) break;
      const sql = sqlCString(buf, name[1], stop, bodyEnd);
      batch.sql = sql;
      batch.parsed = true;
      if (name[0] !== '') {
        if (pg.statements.size >= MAX_STATEMENTS) {
          const oldest = pg.statements.keys().next().value;
          if (oldest !== undefined) pg.statements.delete(oldest);
        }
        pg.statements.set(name[0], sql);
      }
      break;
    }
    case 0x42: {
      // B: portal, statement
      const portal = cstring(buf, p, stop, 128);
      const stmt = portal && cstring(buf, portal[1], stop, 128);
      if (stmt && batch.sql === undefined) batch.sql = pg.statements.get(stmt[0]);
      break;
    }
    case 0x45: // E
      batch.executes++;
      break;
    case 0x53: {
      // S: Sync ends the batch
      const m = request(batch.executes > 0 ? 'EXECUTE' : batch.parsed ? 'PARSE' : 'SYNC', pg, batch.sql);
      out.push(m);
      ctx.state.batch = { parsed: false, executes: 0 };
      break;
    }
    case 0x58: {
      // X: Terminate
      const m = request('TERMINATE', pg);
      m.oneWay = true;
      out.push(m);
      break;
    }
    default:
      break;
  }
  return 1 + len;
}

function cycleOf(ctx: ParseContext, pg: PgSocket): BackendCycle {
  let c = (ctx.state.cycle ??= { emitted: false, any: false }) as BackendCycle;
  // A reply reported early (cut by the capture limit) ends when the client sends its next request.
  if (c.emitted && c.emittedAt !== undefined && pg.sent > c.emittedAt) c = ctx.state.cycle = { emitted: false, any: false };
  return c;
}

function emitCycle(c: BackendCycle, out: L7Message[], pg: PgSocket): void {
  if (c.emitted) return;
  c.emitted = true;
  c.emittedAt = pg.sent;
  const m: L7Message = { l7Protocol: 'postgresql', msgType: 'response', responseStatus: 'ok' };
  if (c.error) {
    m.responseStatus = sqlStateClass(c.error.code);
    if (c.error.message) m.responseException = c.error.message;
    if (c.error.code) m.attributes = { sqlstate: c.error.code };
  } else if (c.tag) {
    m.attributes = { command_tag: c.tag };
    const rows = /(\d+)$/.exec(c.tag);
    if (rows && /^(INSERT|UPDATE|DELETE|SELECT|MERGE|COPY|FETCH|MOVE)\b/.test(c.tag)) m.attributes.rows = rows[1];
  }
  out.push(m);
}

function errorFields(buf: Uint8Array, p: number, end: number): BackendCycle['error'] {
  const e: NonNullable<BackendCycle['error']> = {};
  for (let i = 0; i < 32 && p < end && buf[p] !== 0; i++) {
    const f = buf[p];
    const v = cstring(buf, p + 1, end, 512);
    const val = v ? v[0] : text(buf, p + 1, end, 512);
    if (f === 0x43) e.code = val.slice(0, 5);
    else if (f === 0x4d) e.message = val;
    else if (f === 0x56 || (f === 0x53 && !e.severity)) e.severity = val;
    if (!v) break;
    p = v[1];
  }
  return e;
}

function backend(buf: Uint8Array, off: number, end: number, cut: boolean, ctx: ParseContext, out: L7Message[]): number {
  const pg = pgSocket(ctx);
  const type = buf[off];
  if (pg.awaitingSslAnswer && (type === 0x4e || type === 0x53 || type === 0x47)) {
    pg.awaitingSslAnswer = false;
    out.push({ l7Protocol: 'postgresql', msgType: 'response', responseStatus: 'ok', attributes: { ssl: type === 0x53 ? 'accepted' : 'refused' } });
    return 1;
  }
  if (!BACKEND_TYPES.has(type)) return INVALID;
  if (end - off < 5) {
    if (!cut) return NEED_MORE;
    // The capture limit fell inside a message header: report the reply so far.
    const c = cycleOf(ctx, pg);
    if (c.any) emitCycle(c, out, pg);
    return UNKNOWN_LENGTH;
  }
  const len = u32be(buf, off + 1);
  if (len < 4 || len > 0x3fffffff) return INVALID;
  const bodyEnd = off + 1 + len;
  if (bodyEnd > end && !cut && len <= 2048) return NEED_MORE;
  pg.startup = false;
  const stop = Math.min(end, bodyEnd);
  const c = cycleOf(ctx, pg);
  const p = off + 5;
  switch (type) {
    case 0x45: // E
      c.error ??= errorFields(buf, p, stop);
      c.any = true;
      if (c.error?.severity === 'FATAL' || c.error?.severity === 'PANIC') emitCycle(c, out, pg);
      break;
    case 0x43: // C
      c.tag = cstring(buf, p, stop, 64)?.[0];
      c.any = true;
      break;
    case 0x5a: // Z
      emitCycle(c, out, pg);
      ctx.state.cycle = { emitted: false, any: false };
      break;
    case 0x52: {
      // R: authentication; a failed one is followed by E
      const code = i32be(buf, p);
      if (code === undefined || code < 0 || code > 12) return INVALID;
      break;
    }
    default:
      c.any = true;
      break;
  }
  // The capture limit cut this read: its ReadyForQuery may never be seen, report what we have now.
  if (bodyEnd > end && cut && c.any) emitCycle(c, out, pg);
  return 1 + len;
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    let side = requestSide(ctx);
    if (side === undefined) side = buf[off] === 0 || (FRONTEND_TYPES.has(buf[off]) && ctx.direction === 'egress');
    return side ? frontend(buf, off, end, cut, ctx, out) : backend(buf, off, end, cut, ctx, out);
  },
};

const EXTENDED_FRONTEND = new Set('PBDESCH'.split('').map((c) => c.charCodeAt(0)));
const BACKEND_REPLY = new Set('123TDCZEnts'.split('').map((c) => c.charCodeAt(0)));
const MAX_CHECKED = 64;

/**
 * A connection first seen mid-stream under the extended query protocol (every JDBC pool, most
 * drivers): the read is a run of Parse/Bind/Describe/Execute/Sync/Close/Flush messages, each with a
 * length its body fits, that ends exactly where the read ends (or at the capture limit). Guard:
 * at least two messages, one of them Parse, Bind or Execute, and the run closed by Sync or Flush
 * unless the capture limit cut it; fixed-size messages must have their exact size.
 */
/** Statement text: no control bytes but tab, CR and LF (UTF-8 beyond ASCII is fine). */
function sqlText(p: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = p[i];
    if (c < 0x20 && c !== 9 && c !== 10 && c !== 13) return false;
    if (c === 0x7f) return false;
  }
  return true;
}

function extendedBatch(p: Uint8Array, bytes: number): boolean {
  let off = 0;
  let n = 0;
  let work = false;
  let last = 0;
  while (off < p.length && n < MAX_CHECKED) {
    if (off + 5 > p.length) return p.length < bytes && n >= 2 && work;
    const t = p[off];
    if (!EXTENDED_FRONTEND.has(t)) return false;
    const len = u32be(p, off + 1);
    if (len < 4 || len > 0x3fffffff || off + 1 + len > bytes) return false;
    const body = off + 5;
    const stop = Math.min(p.length, off + 1 + len);
    switch (t) {
      case 0x53: // S
      case 0x48: // H
        if (len !== 4) return false;
        break;
      case 0x44: // D
      case 0x43: // C: 'S'tatement or 'P'ortal, then a name
        if (len < 6 || (body < stop && p[body] !== 0x53 && p[body] !== 0x50)) return false;
        if (off + 1 + len <= p.length && p[off + len] !== 0) return false;
        break;
      case 0x45: // E: portal name, row limit
        if (len < 9) return false;
        if (off + 1 + len <= p.length && p[off + len - 4] !== 0) return false;
        work = true;
        break;
      case 0x50: {
        // P: name, query text, parameter types
        if (len < 8) return false;
        const name = indexOfByte(p, 0, body, stop);
        if (name < 0 ? stop === off + 1 + len : name - body > 128) return false;
        if (name >= 0 && name + 1 < stop && !sqlText(p, name + 1, Math.min(stop, name + 9))) return false;
        work = true;
        break;
      }
      case 0x42: // B: portal, statement, formats, parameters, result formats
        if (len < 10) return false;
        work = true;
        break;
      default:
        break;
    }
    n++;
    last = t;
    off += 1 + len;
  }
  if (n < 2 || !work) return false;
  return off >= p.length ? last === 0x53 || last === 0x48 || p.length < bytes : false;
}

/**
 * The backend's side of a connection first seen mid-stream: a run of ParseComplete,
 * BindComplete, CloseComplete, RowDescription, DataRow, CommandComplete, ErrorResponse, NoData,
 * ParameterDescription, PortalSuspended, ReadyForQuery with valid lengths that ends at the end of
 * the read — fixed-size ones at their exact size, ReadyForQuery with a transaction status — and
 * holds ReadyForQuery or ParseComplete/BindComplete (a lone DataRow is too weak).
 */
function backendReplies(p: Uint8Array, bytes: number): boolean {
  let off = 0;
  let n = 0;
  let strong = false;
  while (off < p.length && n < MAX_CHECKED) {
    if (off + 5 > p.length) return p.length < bytes && n >= 2 && strong;
    const t = p[off];
    if (!BACKEND_REPLY.has(t)) return false;
    const len = u32be(p, off + 1);
    if (len < 4 || len > 0x3fffffff || off + 1 + len > bytes) return false;
    switch (t) {
      case 0x31: // 1
      case 0x32: // 2
      case 0x33: // 3
      case 0x6e: // n
      case 0x73: // s
        if (len !== 4) return false;
        if (t !== 0x73) strong = true;
        break;
      case 0x5a: // Z
        if (len !== 5) return false;
        if (off + 5 < p.length && p[off + 5] !== 0x49 && p[off + 5] !== 0x54 && p[off + 5] !== 0x45) return false;
        strong = true;
        break;
      case 0x54: // T: field count
      case 0x44: // D: column count
      case 0x74: // t: parameter count
        if (len < 6) return false;
        break;
      case 0x43: // C: command tag
        if (len < 5 || (off + 5 < p.length && !isPrintable(p, off + 5, Math.min(p.length, off + 1 + len - 1, off + 13)))) return false;
        break;
      case 0x45: // E: fields start with a known code
        if (len < 5 || (off + 5 < p.length && !/[SVCMDHPpqWstcdnFLR]/.test(String.fromCharCode(p[off + 5])))) return false;
        break;
      default:
        break;
    }
    n++;
    off += 1 + len;
  }
  return n >= 2 && strong && off >= p.length;
}

function checkHead(p: Uint8Array, bytes: number): boolean {
  if (p.length < 8) return false;
  const len = u32be(p, 0);
  const code = u32be(p, 4);
  if (p[0] === 0) {
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) return len === 8 && bytes === 8;
    if (code === CANCEL_REQUEST) return len === 16 && bytes === 16;
    if (code !== PROTOCOL_3 || len < 9 || len > 10240 || len !== bytes) return false;
    const k = cstring(p, 8, p.length, 64);
    return k !== undefined && /^(user|database|application_name|options|client_encoding|replication|[a-z_]+)$/.test(k[0]);
  }
  const type = p[0];
  const mlen = u32be(p, 1);
  if (mlen < 4 || mlen + 1 > bytes) return false;
  if (EXTENDED_FRONTEND.has(type) && extendedBatch(p, bytes)) return true;
  if (BACKEND_REPLY.has(type) && backendReplies(p, bytes)) return true;
  if (type === 0x51 /* Q */) return mlen + 1 === bytes && isPrintable(p, 5, Math.min(p.length, 5 + 8)) && p[Math.min(p.length, mlen + 1) - 1] === 0;
  if (type === 0x52 /* R */) {
    const c = i32be(p, 5);
    return (mlen === 8 || mlen === 12 || (c === 10 && mlen < 256)) && c !== undefined && c >= 0 && c <= 12;
  }
  return false;
}

export const postgresqlParser: ProtocolParser = {
  name: 'postgresql',
  parallel: postgresqlDescriptor.pairing === 'by-id',
  descriptor: postgresqlDescriptor,
  transports: ['tcp'],
  check: (payload, ctx) => checkHead(payload, Math.max(ctx.bytes, payload.length)),
  parse: (payload, ctx) => parseStream(payload, ctx, framer),
  newState: () => ({}),
};
