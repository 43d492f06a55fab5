/**
 * Builders for synthetic message streams: a connection between a client and a server process seen
 * by one agent, with helpers that emit requests and responses at given times.
 */
import type { ProcessInfo } from '../../agent/capture/message.ts';
import type { L7Message } from '../../agent/protocols/parser.ts';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';

export const SLOT_SECONDS = 5;
/** An arbitrary slot-aligned base time: slot 340_000_000 × 5 s. */
export const BASE_SLOT = 340_000_000;
export const BASE_NS = BigInt(BASE_SLOT * SLOT_SECONDS) * 1_000_000_000n;

export interface SocketSpec {
  socketId: number;
  pid: number;
  tid?: number;
  processName?: string;
  role?: 'client' | 'server' | 'unknown';
  localIp?: string;
  localPort?: number;
  remoteIp?: string;
  remotePort?: number;
  l4?: 'tcp' | 'udp';
}

/** A message at `ms` milliseconds after BASE_NS. */
export function msg(sock: SocketSpec, ms: number, direction: 'egress' | 'ingress', l7: L7Message[], extra: Partial<ParsedMessage> = {}): ParsedMessage {
  const ts = BASE_NS + BigInt(Math.round(ms * 1e6));
  return {
    tsNs: ts,
    enterNs: ts,
    exitNs: ts + 1000n,
    pid: sock.pid,
    tid: sock.tid ?? sock.pid,
    coroutineId: 0,
    processName: sock.processName ?? 'proc',
    syscall: direction === 'egress' ? 'write' : 'read',
    direction,
    socketId: sock.socketId,
    family: 'ipv4',
    l4: sock.l4 ?? 'tcp',
    localIp: sock.localIp ?? '10.0.0.1',
    localPort: sock.localPort ?? 40000,
    remoteIp: sock.remoteIp ?? '10.0.0.2',
    remotePort: sock.remotePort ?? 80,
    role: sock.role ?? 'unknown',
    tcpSeq: 0,
    syscallTraceId: 0,
    bytes: 100,
    payload: new Uint8Array(0),
    l7,
    ...extra,
  };
}

export function httpReq(path: string, extra: Partial<L7Message> = {}): L7Message {
  return { l7Protocol: 'http1', msgType: 'request', requestType: 'GET', requestDomain: 'svc', requestResource: path, endpoint: path, ...extra };
}

export function httpResp(code: number, extra: Partial<L7Message> = {}): L7Message {
  return { l7Protocol: 'http1', msgType: 'response', responseCode: code, responseStatus: code >= 500 ? 'server_error' : code >= 400 ? 'client_error' : 'ok', ...extra };
}

export function proc(pid: number, name: string, containerId = ''): ProcessInfo {
  return { pid, startTime: 1000 + pid, name, cmdline: `/usr/bin/${name}`, containerId, cgroup: '' };
}

/** Cut messages into per-slot batches by timestamp (the agent's job), one part each. */
export function cutBatches(agentId: string, messages: ParsedMessage[], processes: ProcessInfo[], host = agentId, slotSeconds = SLOT_SECONDS): Map<number, Batch> {
  const out = new Map<number, Batch>();
  const sorted = [...messages].sort((a, b) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0));
  for (const m of sorted) {
    const slot = Number(m.tsNs / 1_000_000_000n / BigInt(slotSeconds));
    let b = out.get(slot);
    if (!b) {
      b = { version: 1, agentId, host, slot, slotSeconds, part: 0, messages: [], processes: [], closed: [] };
      out.set(slot, b);
    }
    b.messages.push(m);
    const p = processes.find((x) => x.pid === m.pid);
    if (p && !b.processes.includes(p)) b.processes.push(p);
  }
  return out;
}
