/**
 * DNS over UDP (one message per datagram) and TCP (each message behind a 2-byte length; a first
 * message read without its length, as a server that read the length before the agent started sees
 * it, is recognised when it fills the read exactly).
 * Parallel protocol: responses pair with queries by the DNS id.
 *
 * Fields: request_id = id, request_type = QTYPE name, request_domain = request_resource = endpoint =
 * QNAME, response_code = RCODE (NXDOMAIN and FORMERR/REFUSED are client errors, others server
 * errors); A/AAAA/CNAME answers go to attributes["dns.answers"].
 */

import type { L7Message, ParseContext, ProtocolParser } from '../parser.ts';
import { dnsDescriptor } from './descriptor.ts';
import { u16be } from '../lib/bytes.ts';
import { INVALID, NEED_MORE, UNKNOWN_LENGTH, parseStream, streamState } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

const QTYPES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 13: 'HINFO', 15: 'MX', 16: 'TXT', 17: 'RP', 18: 'AFSDB',
  24: 'SIG', 25: 'KEY', 28: 'AAAA', 29: 'LOC', 33: 'SRV', 35: 'NAPTR', 36: 'KX', 37: 'CERT', 39: 'DNAME',
  41: 'OPT', 43: 'DS', 44: 'SSHFP', 45: 'IPSECKEY', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 49: 'DHCID',
  50: 'NSEC3', 51: 'NSEC3PARAM', 52: 'TLSA', 53: 'SMIMEA', 55: 'HIP', 59: 'CDS', 60: 'CDNSKEY', 61: 'OPENPGPKEY',
  62: 'CSYNC', 63: 'ZONEMD', 64: 'SVCB', 65: 'HTTPS', 99: 'SPF', 108: 'EUI48', 109: 'EUI64', 249: 'TKEY',
  250: 'TSIG', 251: 'IXFR', 252: 'AXFR', 255: 'ANY', 256: 'URI', 257: 'CAA',
};
const CLIENT_RCODES = new Set([1, 3, 5]); // FORMERR, NXDOMAIN, REFUSED
const MAX_ANSWERS = 8;

/** Read a (possibly compressed) name at `pos`: [name, position after it in the record]. */
function readName(b: Uint8Array, pos: number, end: number): [string, number] | undefined {
  let name = '';
  let p = pos;
  let after = -1;
  for (let hops = 0; hops < 32; hops++) {
    if (p >= end) return undefined;
    const len = b[p];
    if (len === 0) {
      return [name === '' ? '.' : name, after >= 0 ? after : p + 1];
    }
    if ((len & 0xc0) === 0xc0) {
      if (p + 1 >= end) return undefined;
      const target = ((len & 0x3f) << 8) | b[p + 1];
      if (after < 0) after = p + 2;
      if (target >= p) return undefined; // pointers go backwards; anything else may loop
      p = target;
      continue;
    }
    if (len > 63 || p + 1 + len > end) return undefined;
    if (name.length + len > 253) return undefined;
    if (name) name += '.';
    for (let i = p + 1; i <= p + len; i++) {
      const c = b[i];
      if (c <= 0x20 || c >= 0x7f) return undefined;
      name += String.fromCharCode(c);
    }
    p += 1 + len;
  }
  return undefined;
}

function skipName(b: Uint8Array, pos: number, end: number): number {
  let p = pos;
  while (p < end) {
    const len = b[p];
    if (len === 0) return p + 1;
    if ((len & 0xc0) === 0xc0) return p + 2 <= end ? p + 2 : -1;
    if (len > 63) return -1;
    p += 1 + len;
  }
  return -1;
}

interface Header {
  id: number;
  qr: boolean;
  opcode: number;
  rcode: number;
  qd: number;
  an: number;
}

function header(b: Uint8Array, o: number, end: number): Header | undefined {
  if (end - o < 12) return undefined;
  const flags = u16be(b, o + 2);
  const h = { id: u16be(b, o), qr: (flags & 0x8000) !== 0, opcode: (flags >> 11) & 0xf, rcode: flags & 0xf, qd: u16be(b, o + 4), an: u16be(b, o + 6) };
  if (h.opcode > 6 || h.opcode === 3 || (flags & 0x0040) !== 0) return undefined; // unassigned opcode or Z set
  if (h.qd > 4) return undefined;
  if (!h.qr && (h.an > 0 || h.rcode !== 0)) return undefined;
  return h;
}

/** Parse one DNS message in b[o, end). `strict` (for check) also wants a question and a sane class. */
function parseMessage(b: Uint8Array, o: number, end: number, strict: boolean): L7Message | undefined {
  const h = header(b, o, end);
  if (!h) return undefined;
  if (strict && h.qd !== 1) return undefined;
  const m: L7Message = { l7Protocol: 'dns', msgType: h.qr ? 'response' : 'request', requestId: h.id };
  let p = o + 12;
  if (h.qd >= 1) {
    const q = readNameRelative(b, o, p, end);
    if (!q) {
      if (strict) return undefined;
    } else {
      const [name, after] = q;
      const qtype = u16be(b, after);
      const qclass = u16be(b, after + 2);
      if (strict && (qtype <= 0 || !(qclass === 1 || qclass === 3 || qclass === 255 || (qclass & 0x7fff) === 1))) return undefined;
      m.requestDomain = m.requestResource = m.endpoint = name;
      if (qtype >= 0) m.requestType = QTYPES[qtype] ?? `TYPE${qtype}`;
      p = after + 4;
    }
  }
  if (h.qr) {
    m.responseCode = h.rcode;
    m.responseStatus = h.rcode === 0 ? 'ok' : CLIENT_RCODES.has(h.rcode) ? 'client_error' : 'server_error';
    const answers: string[] = [];
    for (let i = 1; i < h.qd && p < end; i++) {
      const q = skipName(b, p, end);
      if (q < 0) break;
      p = q + 4;
    }
    for (let i = 0; i < h.an && answers.length < MAX_ANSWERS && p < end; i++) {
      const q = skipName(b, p, end);
      if (q < 0 || q + 10 > end) break;
      const type = u16be(b, q);
      const rdlen = u16be(b, q + 8);
      const rd = q + 10;
      if (rd + rdlen > end) break;
      if (type === 1 && rdlen === 4) answers.push(`${b[rd]}.${b[rd + 1]}.${b[rd + 2]}.${b[rd + 3]}`);
      else if (type === 28 && rdlen === 16) answers.push(ipv6(b, rd));
      else if (type === 5) {
        const c = readNameRelative(b, o, rd, end);
        if (c) answers.push(c[0]);
      }
      p = rd + rdlen;
    }
    if (answers.length > 0) m.attributes = { 'dns.answers': answers.join(',') };
  }
  return m;
}

/** Names compress against the message start `o` (which is 2 bytes in on TCP). */
function readNameRelative(b: Uint8Array, o: number, pos: number, end: number): [string, number] | undefined {
  if (o === 0) return readName(b, pos, end);
  const r = readName(b.subarray(o, end), pos - o, end - o);
  return r ? [r[0], r[1] + o] : undefined;
}

function ipv6(b: Uint8Array, o: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[o + i] << 8) | b[o + i + 1]).toString(16));
  return parts.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:::+/, '::');
}

const tcpFramer: StreamFramer = {
  frame(buf, off, end, cut, _ctx, out) {
    if (end - off < 2) return cut ? INVALID : NEED_MORE;
    const len = u16be(buf, off);
    if (len < 12) return INVALID;
    const avail = Math.min(end, off + 2 + len);
    if (avail - off - 2 < 12) return cut ? INVALID : NEED_MORE;
    if (avail < off + 2 + len && !cut) {
      // Wait for the whole message when it will come in the next read (messages are small).
      if (len <= 2048) return NEED_MORE;
    }
    const m = parseMessage(buf, off + 2, avail, false);
    if (!m) return INVALID;
    out.push(m);
    return avail < off + 2 + len && cut ? UNKNOWN_LENGTH : 2 + len;
  },
};

const MAX_CHECKED = 8;

/**
 * DNS over TCP: one or more length-prefixed messages (glibc writes the A and AAAA queries in one
 * send), each a well-formed message with one question, ending exactly at the end of the read — or
 * the last one cut by the capture limit.
 */
function tcpMessages(p: Uint8Array): boolean {
  let off = 0;
  let n = 0;
  while (off < p.length) {
    if (n === MAX_CHECKED) return true;
    if (off + 2 > p.length) return false;
    const len = u16be(p, off);
    if (len < 17) return false;
    const end = Math.min(p.length, off + 2 + len);
    if (parseMessage(p, off + 2, end, true) === undefined) return false;
    n++;
    off += 2 + len;
  }
  return n > 0;
}

const MAX_RECORDS = 64;

/**
 * One whole DNS message with no length prefix, filling the read exactly: what a server reads when
 * it takes the 2-byte length in a read of its own (dnsmasq reads it a byte at a time) and that read
 * began before the agent did. Every record is walked so the message must end at the read's end.
 */
function bareMessage(p: Uint8Array): boolean {
  const h = header(p, 0, p.length);
  if (!h || h.qd !== 1 || p.length < 17) return false;
  const ns = u16be(p, 8);
  const ar = u16be(p, 10);
  if (h.an + ns + ar > MAX_RECORDS) return false;
  if (parseMessage(p, 0, p.length, true) === undefined) return false;
  let pos = skipName(p, 12, p.length);
  if (pos < 0) return false;
  pos += 4;
  for (let i = 0; i < h.an + ns + ar; i++) {
    const q = skipName(p, pos, p.length);
    if (q < 0 || q + 10 > p.length) return false;
    pos = q + 10 + u16be(p, q + 8);
  }
  return pos === p.length;
}

export const dnsParser: ProtocolParser = {
  name: 'dns',
  parallel: dnsDescriptor.pairing === 'by-id',
  descriptor: dnsDescriptor,
  transports: ['udp', 'tcp'],
  check(payload, ctx) {
    if (ctx.l4 === 'udp') return parseMessage(payload, 0, payload.length, true) !== undefined;
    return tcpMessages(payload) || bareMessage(payload);
  },
  parse(payload, ctx: ParseContext) {
    if (ctx.l4 === 'tcp') {
      const st = streamState(ctx);
      if (!st.seen && !st.pending && !tcpMessages(payload) && bareMessage(payload)) {
        // The length was read before the agent started; from here on the stream frames normally.
        st.seen = true;
        const m = parseMessage(payload, 0, payload.length, false);
        return m ? [m] : null;
      }
      return parseStream(payload, ctx, tcpFramer);
    }
    const m = parseMessage(payload, 0, payload.length, false);
    if (!m) return null;
    if (ctx.bytes > payload.length) m.truncated = true;
    return [m];
  },
  newState: () => ({}),
};
