/**
 * TLS handshake metadata: what an encrypted connection says in the clear before its keys are set.
 * Reads the TLS record layer (5-byte headers: content type, version, length):
 *
 *   - ClientHello (request): the server name (SNI) as request_domain, request_resource and
 *     endpoint; the versions offered (supported_versions, else the legacy version) in
 *     `attributes.versions` and the highest as `version`; the ALPN protocols offered in
 *     `attributes.alpn`.
 *   - ServerHello (response, ok): the version chosen (supported_versions for TLS 1.3) as `version`,
 *     the ALPN protocol chosen and the cipher suite in attributes; a HelloRetryRequest is marked
 *     `attributes.hello_retry`.
 *   - A plaintext alert: from the server, a response with the alert's description as the exception
 *     and its number as response_code (a refused offer — protocol_version, handshake_failure,
 *     unrecognized_name, no_application_protocol — is a client error; internal_error a server one);
 *     from the client, a one-way `Alert` request (it refused the server's certificate).
 *
 * Everything after a ChangeCipherSpec or the first application-data record of a direction is
 * ciphertext (TLS 1.2's Finished and later alerts, all of TLS 1.3 after the ServerHello): it is
 * framed and skipped, never read. The agent hands this parser only the handshake and alert records
 * of a TLS socket (agent/capture/tls-join.ts), never application data.
 */

import type { L7Message, ParseContext, ProtocolParser, ResponseStatus } from '../parser.ts';
import { tlsDescriptor } from './descriptor.ts';
import { text, u16be, u24be } from '../lib/bytes.ts';
import { requestSide, socketState } from '../lib/direction.ts';
import { INVALID, NEED_MORE, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

const CT_CCS = 20;
const CT_ALERT = 21;
const CT_HANDSHAKE = 22;
const CT_APPDATA = 23;
const CT_HEARTBEAT = 24;
const HS_CLIENT_HELLO = 1;
const HS_SERVER_HELLO = 2;
const MAX_RECORD = 16384 + 2048;
/** A hello longer than this is not waited for across reads (it is read as far as captured). */
const MAX_HELLO_WAIT = 8192;

const VERSIONS: Record<number, string> = { 0x0300: 'SSLv3', 0x0301: 'TLSv1.0', 0x0302: 'TLSv1.1', 0x0303: 'TLSv1.2', 0x0304: 'TLSv1.3' };
const versionName = (v: number): string => VERSIONS[v] ?? `0x${v.toString(16).padStart(4, '0')}`;
/** GREASE values (RFC 8701): 0x?a?a, offered to keep servers honest, never chosen. */
const isGrease = (v: number): boolean => (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);

const ALERTS: Record<number, string> = {
  0: 'close_notify', 10: 'unexpected_message', 20: 'bad_record_mac', 21: 'decryption_failed', 22: 'record_overflow', 30: 'decompression_failure',
  40: 'handshake_failure', 41: 'no_certificate', 42: 'bad_certificate', 43: 'unsupported_certificate', 44: 'certificate_revoked', 45: 'certificate_expired',
  46: 'certificate_unknown', 47: 'illegal_parameter', 48: 'unknown_ca', 49: 'access_denied', 50: 'decode_error', 51: 'decrypt_error', 60: 'export_restriction',
  70: 'protocol_version', 71: 'insufficient_security', 80: 'internal_error', 86: 'inappropriate_fallback', 90: 'user_canceled', 100: 'no_renegotiation',
  109: 'missing_extension', 110: 'unsupported_extension', 111: 'certificate_unobtainable', 112: 'unrecognized_name', 113: 'bad_certificate_status_response',
  114: 'bad_certificate_hash_value', 115: 'unknown_psk_identity', 116: 'certificate_required', 120: 'no_application_protocol',
};
const alertName = (d: number): string => ALERTS[d] ?? `alert_${d}`;

const CIPHERS: Record<number, string> = {
  0x1301: 'TLS_AES_128_GCM_SHA256', 0x1302: 'TLS_AES_256_GCM_SHA384', 0x1303: 'TLS_CHACHA20_POLY1305_SHA256',
  0xc02b: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 0xc02c: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
  0xc02f: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 0xc030: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
  0xcca8: 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256', 0xcca9: 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
  0x009c: 'TLS_RSA_WITH_AES_128_GCM_SHA256', 0x009d: 'TLS_RSA_WITH_AES_256_GCM_SHA384',
};
const cipherName = (c: number): string => CIPHERS[c] ?? `0x${c.toString(16).padStart(4, '0')}`;

/** SHA-256 of "HelloRetryRequest": the ServerHello random that makes it a HelloRetryRequest (RFC 8446 4.1.3). */
const HRR_RANDOM = 'cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c';

/** A record header at `off`: content type 20–24, version 3.0–3.4, length 1 … 2^14 + 2048. */
function recordLength(b: Uint8Array, off: number): number {
  const t = b[off];
  if (t < CT_CCS || t > CT_HEARTBEAT || b[off + 1] !== 3 || b[off + 2] > 4) return -1;
  const len = u16be(b, off + 3);
  return len > 0 && len <= MAX_RECORD ? len : -1;
}

/** Alerts the server sends when the client's offer is unacceptable are the client's fault. */
function serverAlertStatus(d: number): ResponseStatus {
  if (d === 0) return 'ok';
  return d === 80 || d === 21 || d === 20 ? 'server_error' : 'client_error';
}

interface Hello {
  sni?: string;
  alpn: string[];
  versions: number[];
  cipher?: number;
  hrr?: boolean;
}

/**
 * The extensions of a hello at `p` up to `end` (what was captured: a cut hello gives what it has).
 * `client`: supported_versions is a list (ClientHello) or one value (ServerHello).
 */
function readExtensions(b: Uint8Array, p: number, end: number, client: boolean, h: Hello): void {
  if (p + 2 > end) return;
  const extEnd = Math.min(end, p + 2 + u16be(b, p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = u16be(b, p);
    const len = u16be(b, p + 2);
    const d = p + 4;
    const e = Math.min(d + len, extEnd);
    if (type === 0 && client && d + 5 <= e && b[d + 2] === 0) {
      // server_name: list length, name type 0 (host_name), name length, name
      const n = u16be(b, d + 3);
      const name = text(b, d + 5, Math.min(d + 5 + n, e), 255);
      if (/^[A-Za-z0-9._-]{1,255}$/.test(name)) h.sni = name.toLowerCase();
    } else if (type === 16 && d + 2 <= e) {
      let q = d + 2;
      while (q < e && h.alpn.length < 16) {
        const n = b[q];
        if (n === 0 || q + 1 + n > e) break;
        h.alpn.push(text(b, q + 1, q + 1 + n, 64));
        q += 1 + n;
      }
    } else if (type === 43) {
      if (client) {
        const n = b[d];
        for (let q = d + 1; q + 2 <= Math.min(d + 1 + n, e) && h.versions.length < 16; q += 2) {
          const v = u16be(b, q);
          if (!isGrease(v)) h.versions.push(v);
        }
      } else if (d + 2 <= e) h.versions = [u16be(b, d)];
    }
    p = d + len;
  }
}

/** A ClientHello or ServerHello body at `p` (after the 4-byte handshake header) up to `end`. */
function readHello(b: Uint8Array, p: number, end: number, client: boolean): Hello {
  const h: Hello = { alpn: [], versions: [] };
  if (p + 2 > end) return h;
  const legacy = u16be(b, p);
  p += 2;
  if (!client && p + 32 <= end) h.hrr = Buffer.from(b.buffer, b.byteOffset + p, 32).toString('hex') === HRR_RANDOM;
  p += 32;
  if (p >= end) {
    h.versions = [legacy];
    return h;
  }
  p += 1 + b[p]; // session id
  if (client) {
    if (p + 2 > end) return { ...h, versions: [legacy] };
    p += 2 + u16be(b, p); // cipher suites
    if (p >= end) return { ...h, versions: [legacy] };
    p += 1 + b[p]; // compression methods
  } else {
    if (p + 3 > end) return { ...h, versions: [legacy] };
    h.cipher = u16be(b, p);
    p += 3; // cipher suite, compression method
  }
  readExtensions(b, p, end, client, h);
  if (h.versions.length === 0) h.versions = [legacy];
  return h;
}

interface TlsDirState {
  /** A ChangeCipherSpec or application data went by: the rest of this direction is ciphertext. */
  encrypted?: boolean;
}
interface TlsShared {
  /** The direction the ClientHello came from (tells who sent an alert when the role is unknown). */
  tlsClientDir?: string;
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    if (end - off < 5) return cut ? INVALID : NEED_MORE;
    const len = recordLength(buf, off);
    if (len < 0) return INVALID;
    const type = buf[off];
    const st = ctx.state as TlsDirState;
    const total = 5 + len;
    if (type === CT_CCS || type === CT_APPDATA || type === CT_HEARTBEAT) {
      st.encrypted = true;
      return total;
    }
    if (st.encrypted) return total; // an encrypted Finished or alert: not readable
    const body = off + 5;
    if (type === CT_ALERT) {
      if (len !== 2) return total; // not a plaintext alert
      if (body + 2 > end) return cut ? total : NEED_MORE;
      const level = buf[body];
      const desc = buf[body + 1];
      if (level !== 1 && level !== 2) return INVALID;
      const shared = socketState(ctx) as TlsShared;
      const fromClient = shared.tlsClientDir !== undefined ? shared.tlsClientDir === ctx.direction : requestSide(ctx) === true;
      const attributes = { alert: alertName(desc), level: level === 2 ? 'fatal' : 'warning' };
      if (fromClient) out.push({ l7Protocol: 'tls', msgType: 'request', requestType: 'Alert', requestResource: alertName(desc), oneWay: true, attributes, requestLength: total });
      else out.push({ l7Protocol: 'tls', msgType: 'response', responseStatus: serverAlertStatus(desc), responseCode: desc, responseException: alertName(desc), attributes, responseLength: total });
      return total;
    }
    // Handshake: only a hello that starts the record is read (they always do).
    if (body + 4 > end) return cut ? total : NEED_MORE;
    const hs = buf[body];
    if (hs !== HS_CLIENT_HELLO && hs !== HS_SERVER_HELLO) return total;
    const hsLen = u24be(buf, body + 1);
    if (hsLen < 38 || hsLen > 0xffff) return INVALID;
    const helloEnd = body + 4 + hsLen;
    if (!cut && helloEnd > end && helloEnd - off <= MAX_HELLO_WAIT) return NEED_MORE;
    const h = readHello(buf, body + 4, Math.min(helloEnd, end, off + total), hs === HS_CLIENT_HELLO);
    const top = h.versions.reduce((a, v) => (v > a ? v : a), 0);
    if (hs === HS_CLIENT_HELLO) {
      (socketState(ctx) as TlsShared).tlsClientDir = ctx.direction;
      const m: L7Message = { l7Protocol: 'tls', msgType: 'request', requestType: 'ClientHello', version: versionName(top), requestLength: total };
      if (h.sni !== undefined) {
        m.requestDomain = h.sni;
        m.requestResource = h.sni;
        m.endpoint = h.sni;
      }
      m.attributes = { versions: h.versions.map(versionName).join(',') };
      if (h.alpn.length > 0) m.attributes.alpn = h.alpn.join(',');
      out.push(m);
    } else {
      const m: L7Message = { l7Protocol: 'tls', msgType: 'response', responseStatus: 'ok', version: versionName(top), responseLength: total, attributes: {} };
      if (h.cipher !== undefined) m.attributes!.cipher = cipherName(h.cipher);
      if (h.alpn.length > 0) m.attributes!.alpn = h.alpn[0];
      if (h.hrr) m.attributes!.hello_retry = 'true';
      out.push(m);
    }
    return total;
  },
};

/**
 * Claims a stream on a ClientHello or ServerHello in a handshake record (record and handshake
 * lengths agreeing, a known version), or a lone plaintext alert record of exactly 7 bytes with a
 * known level and description. Other records (a connection first seen after its handshake) say
 * nothing readable, and are not claimed.
 */
function checkHead(p: Uint8Array): boolean {
  if (p.length < 7) return false;
  const len = recordLength(p, 0);
  if (len < 0) return false;
  if (p[0] === CT_ALERT) return len === 2 && p.length === 7 && (p[5] === 1 || p[5] === 2) && ALERTS[p[6]] !== undefined;
  if (p[0] !== CT_HANDSHAKE || p.length < 11) return false;
  const hs = p[5];
  const hsLen = u24be(p, 6);
  if ((hs !== HS_CLIENT_HELLO && hs !== HS_SERVER_HELLO) || hsLen < 38 || hsLen + 4 > len) return false;
  const v = u16be(p, 9);
  return v >= 0x0300 && v <= 0x0304;
}

export const tlsParser: ProtocolParser = {
  name: 'tls',
  parallel: tlsDescriptor.pairing === 'by-id',
  descriptor: tlsDescriptor,
  transports: ['tcp'],
  check: (payload) => checkHead(payload),
  parse: (payload, ctx: ParseContext) => parseStream(payload, ctx, framer, MAX_HELLO_WAIT),
  newState: () => ({}),
};
