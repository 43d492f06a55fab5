/**
 * MongoDB wire protocol: OP_MSG (every command since MongoDB 3.6: body section and document
 * sequences), OP_QUERY / OP_REPLY (the driver handshake on `admin.$cmd`, legacy servers), and the
 * headers of OP_COMPRESSED and the legacy write opcodes. Little-endian 16-byte header:
 * messageLength, requestID, responseTo, opCode.
 *
 * Parallel protocol: request_id = requestID of a request, responseTo of a reply. Fields:
 * request_type = the command (first key of the command document: find, insert, hello, …),
 * request_domain = database (`$db`, or the OP_QUERY namespace), request_resource = namespace
 * `db.collection` (the command name when it names no collection), endpoint = "command
 * db.collection"; replies: `ok: 0` → code, errmsg, codeName; `writeErrors` (ok: 1 with a
 * duplicate key, 11000) and `writeConcernError` count as errors too. Codes that mean the server
 * or the cluster failed (shutdown, not primary, timeouts, network) are server errors, the rest
 * client errors.
 */

import type { L7Message, ProtocolParser, ResponseStatus } from '../parser.ts';
import { mongodbDescriptor } from './descriptor.ts';
import { isPrintable, text, u32le } from '../lib/bytes.ts';
import { INVALID, NEED_MORE, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_COMPRESSED = 2012;
const OP_MSG = 2013;
const OPCODES: Record<number, string> = { 1: 'OP_REPLY', 2001: 'OP_UPDATE', 2002: 'OP_INSERT', 2004: 'OP_QUERY', 2005: 'OP_GET_MORE', 2006: 'OP_DELETE', 2007: 'OP_KILL_CURSORS', 2012: 'OP_COMPRESSED', 2013: 'OP_MSG' };
const MAX_MESSAGE = 48_000_000;
/** Writes a driver sends with moreToCome when w: 0: never answered. */
const UNACKNOWLEDGED = new Set(['insert', 'update', 'delete']);
const SERVER_CODES = new Set([1, 6, 7, 8, 24, 46, 50, 89, 91, 112, 117, 133, 134, 189, 202, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

/** BSON value sizes by type (fixed), or -1 for length-prefixed, -2 for cstring pairs, undefined unknown. */
function valueEnd(b: Uint8Array, type: number, p: number, end: number): number {
  switch (type) {
    case 0x01: case 0x09: case 0x11: case 0x12: return p + 8;
    case 0x07: return p + 12;
    case 0x08: return p + 1;
    case 0x10: return p + 4;
    case 0x13: return p + 16;
    case 0x06: case 0x0a: case 0xff: case 0x7f: return p;
    case 0x02: case 0x0d: case 0x0e: { const n = u32le(b, p); return n < 1 ? -1 : p + 4 + n; }
    case 0x03: case 0x04: case 0x0f: { const n = u32le(b, p); return n < 5 ? -1 : p + n; }
    case 0x05: { const n = u32le(b, p); return n < 0 ? -1 : p + 5 + n; }
    case 0x0c: { const n = u32le(b, p); return n < 1 ? -1 : p + 4 + n + 12; }
    case 0x0b: {
      let q = p;
      for (let k = 0; k < 2; k++) {
        while (q < end && b[q] !== 0) q++;
        q++;
      }
      return q <= end ? q : -1;
    }
    default: return -1;
  }
}

interface Element {
  type: number;
  key: string;
  /** Where the value starts and ends (the end may lie past the captured bytes). */
  at: number;
  end: number;
}

/** Walk the top-level elements of a BSON document at p; stops at the captured end. */
function* elements(b: Uint8Array, p: number, end: number): Generator<Element> {
  const size = u32le(b, p);
  if (size < 5) return;
  const docEnd = Math.min(end, p + size - 1);
  let q = p + 4;
  for (let n = 0; n < 256 && q < docEnd; n++) {
    const type = b[q];
    let z = q + 1;
    while (z < docEnd && b[z] !== 0) z++;
    if (z >= docEnd) return;
    const key = text(b, q + 1, z, 128);
    const at = z + 1;
    const e = valueEnd(b, type, at, docEnd);
    if (e < 0) return;
    yield { type, key, at, end: e };
    q = e;
  }
}

function str(b: Uint8Array, el: Element, max = 256): string | undefined {
  if (el.type !== 0x02) return undefined;
  const n = u32le(b, el.at);
  return text(b, el.at + 4, Math.min(el.end - 1, el.at + 4 + n - 1), max);
}

function num(b: Uint8Array, el: Element): number | undefined {
  if (el.end > b.length) return undefined;
  if (el.type === 0x10) return u32le(b, el.at) | 0;
  if (el.type === 0x01) return new DataView(b.buffer, b.byteOffset + el.at, 8).getFloat64(0, true);
  if (el.type === 0x12) return Number(new DataView(b.buffer, b.byteOffset + el.at, 8).getBigInt64(0, true));
  if (el.type === 0x08) return b[el.at];
  return undefined;
}

function codeStatus(code: number): ResponseStatus {
  return SERVER_CODES.has(code) ? 'server_error' : 'client_error';
}

/** A command document: name, collection, $db onto a request. */
function commandFields(b: Uint8Array, p: number, end: number, m: L7Message, db?: string): void {
  let coll: string | undefined;
  let first = true;
  for (const el of elements(b, p, end)) {
    if (first) {
      m.requestType = el.key;
      coll = str(b, el);
      first = false;
    } else if (el.key === '$db') db = str(b, el, 128);
  }
  if (db) m.requestDomain = db;
  const ns = coll ? (db ? `${db}.${coll}` : coll) : undefined;
  m.requestResource = ns ?? m.requestType;
  if (m.requestType) m.endpoint = ns ? `${m.requestType} ${ns}` : m.requestType;
}

/** A reply document: ok, and the first error (command error, write error, write concern error). */
function replyFields(b: Uint8Array, p: number, end: number, m: L7Message): void {
  let ok: number | undefined;
  let code: number | undefined;
  let errmsg: string | undefined;
  let codeName: string | undefined;
  let nested: Element | undefined;
  for (const el of elements(b, p, end)) {
    if (el.key === 'ok') ok = num(b, el);
    else if (el.key === 'code') code = num(b, el);
    else if (el.key === 'errmsg' || el.key === '$err') errmsg = str(b, el, 512);
    else if (el.key === 'codeName') codeName = str(b, el, 128);
    else if ((el.key === 'writeErrors' && el.type === 0x04) || (el.key === 'writeConcernError' && el.type === 0x03)) nested ??= el;
  }
  if (ok === 0) {
    m.responseStatus = code !== undefined ? codeStatus(code) : 'server_error';
  } else if (nested) {
    // ok: 1 with a write error: the first one's code and message.
    const doc = nested.type === 0x04 ? elements(b, nested.at, end).next().value : nested;
    if (doc && doc.type === 0x03) {
      for (const el of elements(b, doc.at, end)) {
        if (el.key === 'code') code = num(b, el);
        else if (el.key === 'errmsg') errmsg = str(b, el, 512);
        else if (el.key === 'codeName') codeName = str(b, el, 128);
      }
    }
    m.responseStatus = nested.key === 'writeConcernError' ? 'server_error' : code !== undefined ? codeStatus(code) : 'client_error';
  } else {
    m.responseStatus = ok === undefined ? 'unknown' : 'ok';
    return;
  }
  if (code !== undefined && Number.isFinite(code)) m.responseCode = code;
  if (errmsg) m.responseException = errmsg;
  if (codeName) m.attributes = { codeName };
}

/** The OP_MSG section holding the body (kind 0); document sequences (kind 1) are skipped. */
function msgBody(b: Uint8Array, p: number, end: number): number {
  let q = p + 4;
  for (let n = 0; n < 16 && q < end; n++) {
    if (b[q] === 0) return q + 1;
    if (b[q] !== 1) return -1;
    const size = u32le(b, q + 1);
    if (size < 5) return -1;
    q += 1 + size;
  }
  return -1;
}

function message(b: Uint8Array, off: number, end: number, len: number, out: L7Message[]): boolean {
  const requestId = u32le(b, off + 4) | 0;
  const responseTo = u32le(b, off + 8) | 0;
  const opCode = u32le(b, off + 12);
  const p = off + 16;
  const isReply = opCode === OP_REPLY || responseTo !== 0;
  const m: L7Message = { l7Protocol: 'mongodb', msgType: isReply ? 'response' : 'request', requestId: isReply ? responseTo : requestId };
  if (isReply) m.responseLength = len;
  else m.requestLength = len;
  if (opCode === OP_MSG) {
    const flags = u32le(b, p);
    if (flags < 0 || (flags & ~0x10003) !== 0) return false;
    const body = msgBody(b, p, end);
    if (body >= 0 && body + 5 <= end) {
      if (isReply) replyFields(b, body, end, m);
      else commandFields(b, body, end, m);
    } else if (isReply) m.responseStatus = 'unknown';
    if (!isReply && flags & 2 && UNACKNOWLEDGED.has(m.requestType ?? '')) m.oneWay = true;
  } else if (opCode === OP_QUERY) {
    let z = p + 4;
    while (z < end && z < p + 260 && b[z] !== 0) z++;
    if (z >= end || !isPrintable(b, p + 4, z)) return false;
    const ns = text(b, p + 4, z, 256);
    const dot = ns.indexOf('.');
    const db = dot > 0 ? ns.slice(0, dot) : ns;
    const doc = z + 1 + 8;
    if (doc + 5 <= end) commandFields(b, doc, end, m, db);
    if (ns.endsWith('.$cmd')) {
      if (m.requestResource === m.requestType) m.endpoint = m.requestType;
    } else {
      // A legacy query on a collection: the namespace is the resource.
      m.requestType = 'query';
      m.requestResource = ns;
      m.endpoint = `query ${ns}`;
      m.requestDomain = db;
    }
  } else if (opCode === OP_REPLY) {
    const flags = u32le(b, p);
    const doc = p + 20;
    if (doc + 5 <= end) replyFields(b, doc, end, m);
    else m.responseStatus = 'unknown';
    if (flags & 2) m.responseStatus = m.responseStatus === 'ok' ? 'client_error' : m.responseStatus; // QueryFailure
  } else {
    m.requestType = OPCODES[opCode];
    if (opCode === OP_COMPRESSED) {
      const orig = u32le(b, p);
      if (OPCODES[orig]) m.attributes = { original_opcode: OPCODES[orig] };
    }
    if (isReply) m.responseStatus = 'unknown';
  }
  out.push(m);
  return true;
}

/** A header that makes sense: length, known opCode, and an OP_MSG flag word with only known bits. */
function plausibleHeader(b: Uint8Array, off: number, len: number): boolean {
  if (len < 21 || len > MAX_MESSAGE) return false;
  const opCode = u32le(b, off + 12);
  if (!OPCODES[opCode]) return false;
  const responseTo = u32le(b, off + 8);
  if (opCode === OP_REPLY && responseTo === 0) return false;
  return true;
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, _ctx, out) {
    if (end - off < 16) return cut ? INVALID : NEED_MORE;
    const len = u32le(buf, off);
    if (!plausibleHeader(buf, off, len)) return INVALID;
    // Heads we read fields from are short; wait for them when a read splits one.
    if (off + len > end && !cut && end - off < 1024) return NEED_MORE;
    return message(buf, off, Math.min(end, off + len), len, out) ? len : INVALID;
  },
};

/**
 * Recognition: a 16-byte header read alone, or whole messages (or one cut by the capture limit) with a known opCode; OP_MSG with
 * only known flag bits, a body section whose document starts with a named element; OP_QUERY with a
 * printable `db.collection` namespace; OP_REPLY answering a request id.
 */
function looksLikeMongo(p: Uint8Array, bytes: number): boolean {
  // A header read on its own (mongod, and drivers, read the 16 bytes first, then the body): the
  // body follows in the next read and the framer joins them.
  if (p.length === 16 && bytes === 16) {
    const op = u32le(p, 12);
    return u32le(p, 0) > 16 && plausibleHeader(p, 0, u32le(p, 0)) && (op === OP_MSG || op === OP_QUERY || op === OP_REPLY);
  }
  let off = 0;
  for (let n = 0; n < 8 && off < p.length; n++) {
    if (p.length - off < 21) return false;
    const len = u32le(p, off);
    if (!plausibleHeader(p, off, len) || off + len > bytes) return false;
    const end = Math.min(p.length, off + len);
    const opCode = u32le(p, off + 12);
    const b = off + 16;
    if (opCode === OP_MSG) {
      const flags = u32le(p, b);
      if ((flags & ~0x10003) !== 0) return false;
      const body = msgBody(p, b, end);
      if (body < 0 || body + 7 > end) return false;
      const size = u32le(p, body);
      if (size < 5 || body + size > off + len) return false;
      const el = elements(p, body, end).next().value;
      if (!el || el.key.length === 0 || !isPrintable(p, body + 5, body + 5 + el.key.length)) return false;
    } else if (opCode === OP_QUERY) {
      let z = b + 4;
      while (z < end && p[z] !== 0) z++;
      if (z >= end || z - b - 4 < 3 || !isPrintable(p, b + 4, z) || !text(p, b + 4, z, 256).includes('.')) return false;
    } else if (opCode === OP_REPLY) {
      const numberReturned = u32le(p, b + 16);
      if (numberReturned < 0 || numberReturned > 1 << 20) return false;
    } else return false;
    off += len;
  }
  return true;
}

export const mongodbParser: ProtocolParser = {
  name: 'mongodb',
  parallel: mongodbDescriptor.pairing === 'by-id',
  descriptor: mongodbDescriptor,
  transports: ['tcp'],
  check: (payload, ctx) => looksLikeMongo(payload, Math.max(ctx.bytes, payload.length)),
  parse: (payload, ctx) => parseStream(payload, ctx, framer),
};
