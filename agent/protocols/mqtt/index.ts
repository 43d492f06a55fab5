/**
 * MQTT 3.1, 3.1.1 and 5.0: every control packet, with the topic of PUBLISH / SUBSCRIBE /
 * UNSUBSCRIBE, the client id from CONNECT (request_domain), and the return / reason codes of
 * CONNACK, PUBACK, PUBREC, PUBCOMP, SUBACK and UNSUBACK.
 *
 * Parallel protocol: request_id = packet identifier (0 for CONNECT/CONNACK and PINGREQ/PINGRESP,
 * which carry none and are answered before the next one is sent). Either side may PUBLISH, so
 * request/response follows the packet type, not the socket role. QoS 0 PUBLISH and DISCONNECT get
 * no answer and are marked one-way.
 */

import type { L7Message, ParseContext, ProtocolParser, ResponseStatus } from '../parser.ts';
import { mqttDescriptor } from './descriptor.ts';
import { startsWithAscii, text, u16be } from '../lib/bytes.ts';
import { socketState } from '../lib/direction.ts';
import { INVALID, NEED_MORE, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

const TYPES = ['', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE', 'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT', 'AUTH'];
const REQUESTS = new Set([1, 3, 6, 8, 10, 12, 14, 15]);
/** Fixed-header flags every packet type but PUBLISH must carry (MQTT 3.1.1 §2.2.2). */
const FLAGS: Record<number, number> = { 1: 0, 2: 0, 4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 9: 0, 10: 2, 11: 0, 12: 0, 13: 0, 14: 0, 15: 0 };
const SERVER_REASONS = new Set([0x80, 0x83, 0x88, 0x89, 0x97, 0x9c, 0x9d, 0x9f]);

interface MqttSocket {
  version: number;
  /** The version was read from CONNECT (else it is 3.1.1 until a packet shows 5.0's shape). */
  known?: boolean;
  clientId?: string;
}

function mqttSocket(ctx: ParseContext): MqttSocket {
  const ss = socketState(ctx);
  let s = ss.mqtt as MqttSocket | undefined;
  if (!s) {
    s = { version: 4 };
    ss.mqtt = s;
  }
  return s;
}

/** Remaining Length: [value, bytes used], NEED_MORE, or INVALID. */
function remainingLength(buf: Uint8Array, p: number, end: number): [number, number] | number {
  let v = 0;
  for (let i = 0; i < 4; i++) {
    if (p + i >= end) return NEED_MORE;
    const b = buf[p + i];
    v += (b & 0x7f) * 128 ** i;
    if ((b & 0x80) === 0) return [v, i + 1];
  }
  return INVALID;
}

function mqttString(buf: Uint8Array, p: number, end: number, max = 256): [string, number] | undefined {
  const len = u16be(buf, p);
  if (len < 0 || p + 2 + len > end) return undefined;
  return [text(buf, p + 2, p + 2 + len, max), p + 2 + len];
}

/** Skip MQTT 5 properties at p: position after them. */
function skipProperties(buf: Uint8Array, p: number, end: number): number | undefined {
  const r = remainingLength(buf, p, end);
  if (typeof r === 'number') return undefined;
  const q = p + r[1] + r[0];
  return q <= end ? q : undefined;
}

function versionName(level: number): string {
  return level === 5 ? '5.0' : level === 4 ? '3.1.1' : level === 3 ? '3.1' : String(level);
}

function reasonStatus(code: number, v5: boolean): ResponseStatus {
  if (v5) return code < 0x80 ? 'ok' : SERVER_REASONS.has(code) ? 'server_error' : 'client_error';
  return code === 0 ? 'ok' : code === 3 ? 'server_error' : 'client_error';
}

const MAX_FILTERS = 32;

/** A subscription option byte (3.1.1: the QoS; 5.0: QoS, no-local, retain-as-published, retain handling). */
function validOptions(o: number): boolean {
  return (o & 3) !== 3 && ((o >> 4) & 3) !== 3 && (o & 0xc0) === 0;
}

/**
 * Every topic filter of a SUBSCRIBE (each followed by its options) or UNSUBSCRIBE whose body is
 * buf[p, end) (packet id first). A complete packet's filters must fill it exactly.
 */
function filtersAt(buf: Uint8Array, q: number, end: number, options: boolean, complete: boolean): string[] | undefined {
  const out: string[] = [];
  while (q < end && out.length < MAX_FILTERS) {
    const s = mqttString(buf, q, end, 256);
    if (!s) {
      if (complete) return undefined;
      break;
    }
    if (s[0] === '') return undefined;
    q = s[1];
    if (options) {
      if (q >= end) {
        if (complete) return undefined;
      } else if (!validOptions(buf[q++])) return undefined;
    }
    out.push(s[0]);
  }
  if (complete && q !== end && out.length < MAX_FILTERS) return undefined;
  return out.length > 0 ? out : undefined;
}

/**
 * The filters of a SUBSCRIBE/UNSUBSCRIBE. When the connection was first seen mid-stream (no
 * CONNECT), 3.1.1's layout is tried first, then 5.0's (properties after the packet id); a fit
 * only as 5.0 makes the socket 5.0.
 */
function subscription(buf: Uint8Array, p: number, end: number, options: boolean, complete: boolean, ms: MqttSocket): string[] | undefined {
  const asV5 = (): string[] | undefined => {
    const q = skipProperties(buf, p + 2, end);
    return q === undefined ? undefined : filtersAt(buf, q, end, options, complete);
  };
  if (ms.known) return ms.version === 5 ? asV5() : filtersAt(buf, p + 2, end, options, complete);
  const v3 = filtersAt(buf, p + 2, end, options, complete);
  if (v3) return v3;
  const v5 = asV5();
  if (v5 && complete) ms.version = 5;
  return v5;
}

/** Topic name of a PUBLISH: not empty, no wildcard, no control bytes (UTF-8 beyond ASCII is fine). */
function validTopic(buf: Uint8Array, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c < 0x20 || c === 0x7f || c === 0x23 || c === 0x2b) return false;
  }
  return true;
}

const REASONS_V5 = new Set([0x00, 0x01, 0x02, 0x10, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x92, 0x97, 0x9e, 0xa1, 0xa2]);

/**
 * A connection first seen mid-stream (no CONNECT): the read is a run of control packets whose
 * fixed headers, flags and minimal remaining lengths tile it exactly (or up to the capture limit),
 * each valid for its type. Evidence: a PUBLISH with a clean topic, a SUBSCRIBE/UNSUBSCRIBE whose
 * filters fill it, a SUBACK with valid return codes — or a read that is exactly one PINGREQ /
 * PINGRESP (2 bytes) or one PUBACK/PUBREC/PUBREL/PUBCOMP (4 bytes), or a run of several.
 */
function midstream(b: Uint8Array, bytes: number): boolean {
  let off = 0;
  let n = 0;
  let strong = false;
  while (off < b.length && n < 64) {
    const type = b[off] >> 4;
    const flags = b[off] & 0x0f;
    if (type < 2 || type > 14 || (type !== 3 && FLAGS[type] !== flags)) return false;
    const r = remainingLength(b, off + 1, b.length);
    if (typeof r === 'number') return r === NEED_MORE && b.length < bytes && strong;
    const [len, used] = r;
    if (used > 1 && b[off + used] === 0) return false; // not the minimal encoding
    const body = off + 1 + used;
    const pend = body + len;
    if (pend > bytes) return false;
    const complete = pend <= b.length;
    const e = Math.min(pend, b.length);
    switch (type) {
      case 3: {
        const qos = (flags >> 1) & 3;
        if (qos === 3) return false;
        const tl = u16be(b, body);
        if (tl < 1 || 2 + tl + (qos > 0 ? 2 : 0) > len) return false;
        if (!validTopic(b, body + 2, Math.min(e, body + 2 + tl))) return false;
        if (qos > 0 && body + 4 + tl <= e && u16be(b, body + 2 + tl) === 0) return false;
        strong = true;
        break;
      }
      case 8:
      case 10: {
        if (len < 5 || u16be(b, body) === 0) return false;
        if (!subscription(b, body, e, type === 8, complete, { version: 4 })) return false;
        strong = true;
        break;
      }
      case 9: {
        if (len < 3 || u16be(b, body) === 0) return false;
        let ok = true;
        for (let i = body + 2; i < e; i++) if (b[i] > 2 && b[i] !== 0x80) ok = false;
        if (!ok) {
          // 5.0: properties, then reason codes
          const q = skipProperties(b, body + 2, e);
          if (q === undefined || q >= e) return false;
          for (let i = q; i < e; i++) if (!REASONS_V5.has(b[i])) return false;
        }
        strong = true;
        break;
      }
      case 4:
      case 5:
      case 6:
      case 7:
      case 11:
        if (len < 2 || u16be(b, body) === 0) return false;
        if (len > 2 && (len > 64 || (body + 2 < e && !REASONS_V5.has(b[body + 2])))) return false;
        break;
      case 12:
      case 13:
        if (len !== 0) return false;
        break;
      case 2:
        if (len < 2 || b[body] > 1 || (len === 2 && b[body + 1] > 5)) return false;
        break;
      case 14:
        if (len > 64) return false;
        break;
      default:
        return false;
    }
    n++;
    off = pend;
  }
  if (n === 0 || (off < b.length && n === 64)) return strong && n > 0;
  if (strong || n >= 2) return true;
  // One weak packet alone: only the ones an idle or acknowledging connection sends, at their exact size.
  const t = b[0] >> 4;
  return b.length === bytes && ((b.length === 2 && (t === 12 || t === 13)) || (b.length === 4 && t >= 4 && t <= 7));
}

function packet(type: number, flags: number, buf: Uint8Array, p: number, end: number, complete: boolean, ms: MqttSocket): L7Message | undefined {
  const name = TYPES[type];
  const v5 = ms.version === 5;
  const m: L7Message = { l7Protocol: 'mqtt', msgType: REQUESTS.has(type) ? 'request' : 'response', requestType: name, version: versionName(ms.version) };
  switch (type) {
    case 1: {
      // CONNECT: protocol name, level, flags, keep alive, [properties], client id
      const proto = mqttString(buf, p, end, 8);
      if (!proto || (proto[0] !== 'MQTT' && proto[0] !== 'MQIsdp')) return undefined;
      const level = buf[proto[1]];
      if (level === undefined || level < 3 || level > 5) return undefined;
      ms.version = level;
      ms.known = true;
      m.version = versionName(level);
      let q: number | undefined = proto[1] + 4;
      if (level === 5) q = skipProperties(buf, q, end);
      const id = q !== undefined ? mqttString(buf, q, end, 128) : undefined;
      if (id) ms.clientId = id[0];
      m.requestId = 0;
      break;
    }
    case 2: {
      // CONNACK: ack flags, return / reason code
      if (p + 2 > end) return m;
      const code = buf[p + 1];
      m.requestId = 0;
      m.responseCode = code;
      m.responseStatus = reasonStatus(code, v5);
      break;
    }
    case 3: {
      const qos = (flags >> 1) & 3;
      if (qos === 3) return undefined;
      const topic = mqttString(buf, p, end, 512);
      if (topic) {
        m.requestResource = m.endpoint = topic[0];
        if (qos > 0) {
          const id = u16be(buf, topic[1]);
          if (id >= 0) m.requestId = id;
        }
      }
      if (qos === 0) m.oneWay = true;
      break;
    }
    case 4:
    case 5:
    case 7:
    case 11: {
      const id = u16be(buf, p);
      if (id >= 0) m.requestId = id;
      m.responseStatus = 'ok';
      if (v5 && type !== 11 && p + 3 <= end) {
        m.responseCode = buf[p + 2];
        m.responseStatus = reasonStatus(buf[p + 2], true);
      } else if (v5 && type === 11) {
        const q = skipProperties(buf, p + 2, end);
        if (q !== undefined && q < end) {
          m.responseCode = buf[q];
          m.responseStatus = reasonStatus(buf[q], true);
        }
      }
      break;
    }
    case 6: {
      const id = u16be(buf, p);
      if (id >= 0) m.requestId = id;
      break;
    }
    case 8:
    case 10: {
      const id = u16be(buf, p);
      if (id >= 0) m.requestId = id;
      const f = subscription(buf, p, end, type === 8, complete, ms);
      if (f) {
        m.requestResource = m.endpoint = f.join(',');
        m.version = versionName(ms.version);
      }
      break;
    }
    case 9: {
      const id = u16be(buf, p);
      if (id >= 0) m.requestId = id;
      const q = v5 ? skipProperties(buf, p + 2, end) : p + 2;
      m.responseStatus = 'ok';
      if (q !== undefined && q < end) {
        const code = buf[q];
        m.responseCode = code;
        m.responseStatus = code < 0x80 ? 'ok' : v5 ? reasonStatus(code, true) : 'client_error';
      }
      break;
    }
    case 12:
      m.requestId = 0;
      break;
    case 13:
      m.requestId = 0;
      m.responseStatus = 'ok';
      break;
    case 14:
      m.oneWay = true;
      if (v5 && p < end) m.responseCode = buf[p];
      break;
    case 15:
      m.oneWay = true;
      break;
    default:
      return undefined;
  }
  if (ms.clientId) m.requestDomain = ms.clientId;
  return m;
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    const b0 = buf[off];
    const type = b0 >> 4;
    const flags = b0 & 0x0f;
    if (type === 0) return INVALID;
    if (type !== 3 && FLAGS[type] !== flags) return INVALID;
    const r = remainingLength(buf, off + 1, end);
    if (r === INVALID) return INVALID;
    if (r === NEED_MORE) return cut ? INVALID : NEED_MORE;
    const [len, used] = r as [number, number];
    const p = off + 1 + used;
    const whole = 1 + used + len;
    // Heads are what we read; wait for a split short packet rather than read half a topic.
    if (off + whole > end && !cut && len <= 1024) return NEED_MORE;
    if ((type === 12 || type === 13) && len !== 0) return INVALID;
    const m = packet(type, flags, buf, p, Math.min(end, p + len), p + len <= end, mqttSocket(ctx));
    if (!m) return INVALID;
    if (type === 3) m.requestLength = len;
    out.push(m);
    return whole;
  },
};

export const mqttParser: ProtocolParser = {
  name: 'mqtt',
  parallel: mqttDescriptor.pairing === 'by-id',
  descriptor: mqttDescriptor,
  transports: ['tcp'],
  check(payload, ctx) {
    if (payload.length >= 2 && payload[0] !== 0x10) return midstream(payload, Math.max(ctx.bytes, payload.length));
    if (payload.length < 12 || payload[0] !== 0x10) return false;
    const r = remainingLength(payload, 1, payload.length);
    if (typeof r === 'number') return false;
    const p = 1 + r[1];
    if (1 + r[1] + r[0] > Math.max(ctx.bytes, payload.length)) return false;
    if (u16be(payload, p) === 4 && startsWithAscii(payload, p + 2, 'MQTT')) return payload[p + 6] === 4 || payload[p + 6] === 5;
    return u16be(payload, p) === 6 && startsWithAscii(payload, p + 2, 'MQIsdp') && payload[p + 8] === 3;
  },
  parse: (payload, ctx) => parseStream(payload, ctx, framer),
  newState: () => ({}),
};
