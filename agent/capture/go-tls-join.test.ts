// Go crypto/tls plaintext joined per goroutine (issue 17): a Read that returns on another thread
// than the one it entered on, and a process's first calls made before the agent knew its goid
// offset (syscalls without goroutine ids).
import { describe, expect, it } from 'vitest';
import type { CapturedMessage } from './message.ts';
import type { TlsPlaintext } from './tls-join.ts';
import { TlsJoiner } from './tls-join.ts';

function record(len: number): Uint8Array {
  const out = [23, 3, 3, len >> 8, len & 0xff];
  for (let i = 0; i < len; i++) out.push(0xaa);
  return new Uint8Array(out);
}

function cipher(direction: 'egress' | 'ingress', seq: number, payload: Uint8Array, over: Partial<CapturedMessage>): CapturedMessage {
  return {
    tsNs: 1000n, enterNs: 1000n, exitNs: 1100n, pid: 10, tid: 11, coroutineId: 0, processName: 'gosrv',
    syscall: direction === 'egress' ? 'write' : 'read', direction, socketId: 7, family: 'ipv4', l4: 'tcp',
    localIp: '127.0.0.1', localPort: 443, remoteIp: '127.0.0.1', remotePort: 50000, role: 'server',
    tcpSeq: seq, syscallTraceId: 1, bytes: payload.length, payload, ...over,
  };
}

function plain(direction: 'egress' | 'ingress', text: string, over: Partial<TlsPlaintext>): TlsPlaintext {
  const payload = new TextEncoder().encode(text);
  return { pid: 10, tid: 11, enterNs: 900n, exitNs: 1200n, ssl: 0xc000n, direction, bytes: payload.length, payload, processName: 'gosrv', ...over };
}

const REQ = 'GET / HTTP/1.1\r\n\r\n';

describe('Go TLS plaintext joined per goroutine', () => {
  it('joins by goroutine across threads, not to another goroutine on the same thread', () => {
    const out: CapturedMessage[] = [];
    const j = new TlsJoiner((m) => out.push(m));
    // goroutine 5 read its ciphertext on thread 11; goroutine 6 then read other bytes on thread 11
    j.onSyscall(cipher('ingress', 5000, record(REQ.length + 17), { tid: 11, coroutineId: 5 }));
    j.onSyscall(cipher('ingress', 9000, record(40), { tid: 11, coroutineId: 6, socketId: 8, enterNs: 1150n }));
    // goroutine 5's Read returns on thread 12
    j.onPlaintext(plain('ingress', REQ, { tid: 12, coroutineId: 5 }));
    expect(out.map((m) => [m.socketId, m.tcpSeq, m.coroutineId, m.tls])).toEqual([[7, 5000, 5, true]]);
  });

  it("takes a thread's syscall made inside the call when the syscalls had no goroutine id yet", () => {
    const out: CapturedMessage[] = [];
    const j = new TlsJoiner((m) => out.push(m));
    j.onSyscall(cipher('ingress', 5000, record(REQ.length + 17), { tid: 11, enterNs: 1000n }));
    j.onPlaintext(plain('ingress', REQ, { tid: 11, coroutineId: 5, enterNs: 900n, exitNs: 1200n }));
    j.onSyscall(cipher('egress', 7000, record(25), { tid: 11, enterNs: 1300n, exitNs: 1350n }));
    j.onPlaintext(plain('egress', 'HTTP/1.1 200 OK\r\n', { tid: 11, coroutineId: 5, enterNs: 1250n, exitNs: 1400n }));
    expect(out.map((m) => [m.direction, m.tcpSeq])).toEqual([['ingress', 5000], ['egress', 7000]]);
    // a thread's syscall from before the call is not taken
    j.onSyscall(cipher('ingress', 6000, record(REQ.length + 17), { tid: 13, enterNs: 1000n, socketId: 9 }));
    j.onPlaintext(plain('ingress', REQ, { tid: 13, coroutineId: 9, enterNs: 1500n, exitNs: 1600n }));
    expect(out).toHaveLength(2);
  });
});
