/**
 * ZooKeeper client protocol (jute): each message behind a 4-byte length. The session starts with
 * ConnectRequest / ConnectResponse (no header); then requests are RequestHeader {xid, type} + body
 * and replies ReplyHeader {xid, zxid, err} + body. Server pushes (watch notifications) use xid -1.
 *
 * Parallel protocol: request_id = xid (pings -2, auth -4, setWatches -8). Fields: request_type =
 * the operation (create, getData, setData, getChildren2, ping, closeSession, …; CONNECT for the
 * session handshake, watchEvent for notifications), request_resource = the znode path, endpoint =
 * the path with a sequential node's 10-digit suffix folded to `{seq}`; response_code = err (NoNode
 * -101, NodeExists -110, …: API errors ≤ -100 are client errors, system errors server errors),
 * response_exception = its name. A ConnectResponse with session id 0 (session expired) is a
 * client error.
 */

import type { L7Message, ParseContext, ProtocolParser } from '../parser.ts';
import { zookeeperDescriptor } from './descriptor.ts';
import { i32be, isPrintable, text, u32be } from '../lib/bytes.ts';
import { requestSide, socketState } from '../lib/direction.ts';
import { INVALID, NEED_MORE, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

const OPS: Record<number, string> = {
  1: 'create', 2: 'delete', 3: 'exists', 4: 'getData', 5: 'setData', 6: 'getACL', 7: 'setACL', 8: 'getChildren',
  9: 'sync', 11: 'ping', 12: 'getChildren2', 13: 'check', 14: 'multi', 15: 'create2', 16: 'reconfig',
  17: 'checkWatches', 18: 'removeWatches', 19: 'createContainer', 20: 'deleteContainer', 21: 'createTTL',
  22: 'multiRead', 100: 'auth', 101: 'setWatches', 102: 'sasl', 103: 'getEphemerals', 104: 'getAllChildrenNumber',
  105: 'setWatches2', 106: 'addWatch', 107: 'whoAmI', [-10]: 'createSession', [-11]: 'closeSession',
};
/** Operations whose body starts with a path. */
const PATH_OPS = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 15, 17, 18, 19, 20, 21, 103, 104, 106]);
const ERRORS: Record<number, string> = {
  [-1]: 'SystemError', [-2]: 'RuntimeInconsistency', [-3]: 'DataInconsistency', [-4]: 'ConnectionLoss', [-5]: 'MarshallingError',
  [-6]: 'Unimplemented', [-7]: 'OperationTimeout', [-8]: 'BadArguments', [-13]: 'NewConfigNoQuorum', [-14]: 'ReconfigInProgress',
  [-15]: 'UnknownSession', [-100]: 'APIError', [-101]: 'NoNode', [-102]: 'NoAuth', [-103]: 'BadVersion',
  [-108]: 'NoChildrenForEphemerals', [-110]: 'NodeExists', [-111]: 'NotEmpty', [-112]: 'SessionExpired',
  [-113]: 'InvalidCallback', [-114]: 'InvalidACL', [-115]: 'AuthFailed', [-118]: 'SessionMoved', [-119]: 'NotReadOnly',
  [-120]: 'EphemeralOnLocalSession', [-121]: 'NoWatcher', [-122]: 'RequestTimeout', [-123]: 'ReconfigDisabled',
  [-124]: 'SessionClosedRequireSaslAuth', [-125]: 'QuotaExceeded', [-127]: 'Throttled',
};
const EVENTS: Record<number, string> = { [-1]: 'None', 1: 'NodeCreated', 2: 'NodeDeleted', 3: 'NodeDataChanged', 4: 'NodeChildrenChanged', 5: 'DataWatchRemoved', 6: 'ChildWatchRemoved', 7: 'PersistentWatchRemoved' };
/** Special request xids: ping, auth, setWatches. */
const SPECIAL_XIDS = new Set([-2, -4, -8]);
const MAX_MESSAGE = 1 << 24;
const MAX_OUTSTANDING = 256;
const MAX_PATH = 4096;

interface ZkSocket {
  /** undefined: not known (first seen mid-stream); 'connecting': ConnectRequest seen; 'session': past it. */
  phase?: 'connecting' | 'session';
  /** xid → operation of requests not yet answered (responses do not say their operation). */
  ops: Map<number, number>;
}

function zkSocket(ctx: ParseContext): ZkSocket {
  const ss = socketState(ctx);
  let s = ss.zookeeper as ZkSocket | undefined;
  if (!s) {
    s = { ops: new Map() };
    ss.zookeeper = s;
  }
  return s;
}

function endpointOf(path: string): string {
  return /\d{10}$/.test(path) ? `${path.slice(0, -10)}{seq}` : path;
}

/** A jute ustring at p (4-byte length): [text, position after], undefined when malformed. */
function zkString(b: Uint8Array, p: number, end: number, max = MAX_PATH): [string, number] | undefined {
  if (p + 4 > end) return undefined;
  const n = i32be(b, p);
  if (n === undefined || n < 0 || n > max) return undefined;
  const e = Math.min(end, p + 4 + n);
  return [text(b, p + 4, e, 512), p + 4 + n];
}

/** A path that starts a request body: '/' then printable bytes, all inside the message. */
function pathAt(b: Uint8Array, p: number, end: number): string | undefined {
  const s = zkString(b, p, end);
  if (!s || s[1] > end || s[0].length === 0 || b[p + 4] !== 0x2f || !isPrintable(b, p + 4, s[1])) return undefined;
  return s[0];
}

/** ConnectRequest body: protocolVersion 0, lastZxid, timeout, sessionId, passwd (0 or 16 bytes), [readOnly]. */
function isConnectRequest(b: Uint8Array, p: number, len: number): boolean {
  if ((len !== 44 && len !== 45 && len !== 28 && len !== 29) || u32be(b, p) !== 0) return false;
  const timeout = i32be(b, p + 12) ?? -1;
  const pw = i32be(b, p + 24);
  return timeout >= 0 && timeout <= 3_600_000 && (pw === 0 || pw === 16) && 28 + (pw ?? 0) + (len & 1) === len;
}

/** ConnectResponse body: protocolVersion 0, timeout, sessionId, passwd (16 bytes), [readOnly]. */
function isConnectResponse(b: Uint8Array, p: number, len: number): boolean {
  if ((len !== 36 && len !== 37) || u32be(b, p) !== 0) return false;
  const timeout = i32be(b, p + 4) ?? -1;
  return timeout >= 0 && timeout <= 3_600_000 && i32be(b, p + 16) === 16;
}

/** A request header + body that makes sense: known op, plausible xid, a path where the op has one. */
function isRequest(b: Uint8Array, p: number, end: number, len: number): boolean {
  if (len < 8) return false;
  const xid = i32be(b, p) ?? 0;
  const op = i32be(b, p + 4) ?? 0;
  if (!OPS[op] || !(xid > 0 || SPECIAL_XIDS.has(xid))) return false;
  if (op === 11) return xid === -2 && len === 8;
  if (xid < 0 && op !== 100 && op !== 101 && op !== 105) return false;
  if (PATH_OPS.has(op)) return pathAt(b, p + 8, Math.min(end, p + len)) !== undefined || (end < p + len && end - p < 16);
  return op === -11 ? len === 8 : true;
}

function request(b: Uint8Array, p: number, end: number, len: number, s: ZkSocket): L7Message {
  const xid = i32be(b, p) ?? 0;
  const op = i32be(b, p + 4) ?? 0;
  const m: L7Message = { l7Protocol: 'zookeeper', msgType: 'request', requestType: OPS[op] ?? `op${op}`, requestId: xid, requestLength: len };
  if (PATH_OPS.has(op)) {
    const path = pathAt(b, p + 8, end);
    if (path) {
      m.requestResource = path;
      m.endpoint = endpointOf(path);
    }
  }
  if (s.ops.size >= MAX_OUTSTANDING) s.ops.delete(s.ops.keys().next().value as number);
  s.ops.set(xid, op);
  return m;
}

function reply(b: Uint8Array, p: number, end: number, len: number, s: ZkSocket): L7Message | undefined {
  if (len < 16) return undefined;
  const xid = i32be(b, p) ?? 0;
  const err = i32be(b, p + 12) ?? 0;
  if (xid === -1) {
    // WatcherEvent {type, state, path}: pushed by the server.
    const type = i32be(b, p + 16) ?? 0;
    const m: L7Message = { l7Protocol: 'zookeeper', msgType: 'request', requestType: 'watchEvent', oneWay: true, attributes: { event: EVENTS[type] ?? String(type) } };
    const path = zkString(b, p + 24, end);
    if (path && path[0]) {
      m.requestResource = path[0];
      m.endpoint = endpointOf(path[0]);
    }
    return m;
  }
  const op = s.ops.get(xid);
  if (op !== undefined && xid !== -2) s.ops.delete(xid);
  const m: L7Message = { l7Protocol: 'zookeeper', msgType: 'response', requestId: xid, responseCode: err, responseLength: len };
  if (op !== undefined || xid === -2) m.requestType = OPS[op ?? 11];
  if (err === 0) m.responseStatus = 'ok';
  else {
    m.responseStatus = err <= -100 ? 'client_error' : 'server_error';
    m.responseException = ERRORS[err] ?? `error ${err}`;
  }
  return m;
}

/** Which way this payload goes: requests (client → server) or replies; from the socket role, else the content. */
function requestWay(b: Uint8Array, p: number, end: number, len: number, ctx: ParseContext): boolean {
  const side = requestSide(ctx);
  if (side !== undefined) return side;
  return isConnectRequest(b, p, len) || isRequest(b, p, end, len);
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    if (end - off < 4) return cut ? INVALID : NEED_MORE;
    const len = u32be(buf, off);
    if (len < 8 || len > MAX_MESSAGE) return INVALID;
    const p = off + 4;
    // Heads we read fields from are short; wait for them when a read splits one.
    if (p + len > end && !cut && len <= 4096) return NEED_MORE;
    if (end - p < Math.min(len, 16)) return cut ? INVALID : NEED_MORE;
    const bodyEnd = Math.min(end, p + len);
    const s = zkSocket(ctx);
    if (requestWay(buf, p, bodyEnd, len, ctx)) {
      if (s.phase !== 'session' && isConnectRequest(buf, p, len)) {
        s.phase = 'connecting';
        out.push({ l7Protocol: 'zookeeper', msgType: 'request', requestType: 'CONNECT', requestId: 0, requestLength: len });
        return 4 + len;
      }
      const op = i32be(buf, p + 4) ?? 0;
      if (!OPS[op]) return INVALID;
      s.phase = 'session';
      out.push(request(buf, p, bodyEnd, len, s));
      return 4 + len;
    }
    if (s.phase !== 'session' && isConnectResponse(buf, p, len)) {
      s.phase = 'session';
      const timeout = i32be(buf, p + 4) ?? 0;
      const hi = u32be(buf, p + 8);
      const lo = u32be(buf, p + 12);
      const m: L7Message = { l7Protocol: 'zookeeper', msgType: 'response', requestType: 'CONNECT', requestId: 0, responseLength: len, responseStatus: 'ok' };
      if (hi === 0 && lo === 0) {
        m.responseStatus = 'client_error';
        m.responseException = 'SessionExpired';
      } else m.attributes = { session_id: `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`, session_timeout_ms: String(timeout) };
      out.push(m);
      return 4 + len;
    }
    const m = reply(buf, p, bodyEnd, len, s);
    if (!m) return INVALID;
    s.phase = 'session';
    out.push(m);
    return 4 + len;
  },
};

/**
 * Recognition: a ConnectRequest or ConnectResponse filling the read, or (mid-stream) one or more
 * whole requests with a known operation, a plausible xid and a well-formed path where one belongs.
 */
function looksLikeZookeeper(payload: Uint8Array, bytes: number): boolean {
  let off = 0;
  for (let n = 0; n < 8 && off < payload.length; n++) {
    if (payload.length - off < 12) return false;
    const len = u32be(payload, off);
    if (len < 8 || len > MAX_MESSAGE) return false;
    const wire = off + 4 + len;
    if (wire > bytes || (wire > payload.length && bytes === payload.length)) return false;
    const p = off + 4;
    const end = Math.min(payload.length, wire);
    const ok = n === 0 && wire === bytes && (isConnectRequest(payload, p, len) || isConnectResponse(payload, p, len));
    if (!ok && !isRequest(payload, p, end, len)) return false;
    off = wire;
  }
  return true;
}

export const zookeeperParser: ProtocolParser = {
  name: 'zookeeper',
  parallel: zookeeperDescriptor.pairing === 'by-id',
  descriptor: zookeeperDescriptor,
  transports: ['tcp'],
  check: (payload, ctx) => looksLikeZookeeper(payload, Math.max(ctx.bytes, payload.length)),
  parse: (payload, ctx) => parseStream(payload, ctx, framer),
  newState: () => ({}),
};
