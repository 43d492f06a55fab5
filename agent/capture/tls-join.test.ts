import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { CapturedMessage } from './message.ts';
import type { TlsPlaintext } from './tls-join.ts';
import { TlsJoiner, isTlsRecordHeader } from './tls-join.ts';
import { elfSymbolOffsets } from './tls-libraries.ts';

/** `n` TLS application-data records back to back, with bodies of the given lengths. */
function records(...bodies: number[]): Uint8Array {
  const out: number[] = [];
  for (const len of bodies) {
    out.push(23, 3, 3, len >> 8, len & 0xff);
    for (let i = 0; i < len; i++) out.push(0xaa);
  }
  return new Uint8Array(out);
}

let nextTrace = 100;
function cipher(direction: 'egress' | 'ingress', seq: number, payload: Uint8Array, over: Partial<CapturedMessage> = {}): CapturedMessage {
  return {
    tsNs: 1000n,
    enterNs: 1000n,
    exitNs: 1100n,
    pid: 10,
    tid: 11,
    coroutineId: 0,
    processName: 'srv',
    syscall: direction === 'egress' ? 'write' : 'read',
    direction,
    socketId: 7,
    family: 'ipv4',
    l4: 'tcp',
    localIp: '127.0.0.1',
    localPort: 443,
    remoteIp: '127.0.0.1',
    remotePort: 50000,
    role: 'server',
    tcpSeq: seq,
    syscallTraceId: nextTrace++,
    bytes: payload.length,
    payload,
    ...over,
  };
}

function plain(direction: 'egress' | 'ingress', text: string, enterNs: bigint, exitNs: bigint): TlsPlaintext {
  const payload = new TextEncoder().encode(text);
  return { pid: 10, tid: 11, enterNs, exitNs, ssl: 0x1234n, direction, bytes: payload.length, payload, processName: 'srv' };
}

describe('TLS plaintext joined to its ciphertext syscall', () => {
  it('recognises TLS record headers and nothing that is not one', () => {
    expect(isTlsRecordHeader(records(10))).toBe(true);
    expect(isTlsRecordHeader(new TextEncoder().encode('GET / HTTP/1.1\r\n'))).toBe(false);
    expect(isTlsRecordHeader(new Uint8Array([22, 3, 1, 0]))).toBe(false); // short
    expect(isTlsRecordHeader(new Uint8Array([23, 3, 3, 0x7f, 0xff]))).toBe(false); // longer than a record may be
  });

  it('leaves sockets that are not TLS to the parsers', () => {
    const out: CapturedMessage[] = [];
    const j = new TlsJoiner((m) => out.push(m));
    expect(j.onSyscall(cipher('ingress', 1, new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n')))).toBe(false);
    expect(out).toEqual([]);
  });

  it('ingress: a read carrying session tickets and the request gives the request the sequence of its own record', () => {
    const out: CapturedMessage[] = [];
    const j = new TlsJoiner((m) => out.push(m));
    const req = 'GET /x HTTP/1.1\r\n\r\n';
    // Two 0x17 records of other lengths (TLS 1.3 Finished / tickets), then the request's (len + 17).
    const c = cipher('ingress', 5000, records(53, 250, req.length + 17));
    expect(j.onSyscall(c)).toBe(true);
    j.onPlaintext(plain('ingress', req, 1200n, 1300n));
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ tls: true, tcpSeq: 5000 + 58 + 255, bytes: req.length, socketId: 7, syscallTraceId: c.syscallTraceId });
    expect(new TextDecoder().decode(out[0].payload)).toBe(req);
  });

  it('ingress: a 5-byte header read then the body read (OpenSSL without read-ahead) keeps the header\'s sequence', () => {
    const out: CapturedMessage[] = [];
    const j = new TlsJoiner((m) => out.push(m));
    const req = 'GET /y HTTP/1.1\r\n\r\n';
    const rec = records(req.length + 17);
    j.onSyscall(cipher('ingress', 9000, rec.subarray(0, 5)));
    j.onSyscall(cipher('ingress', 9005, rec.subarray(5)));
    j.onPlaintext(plain('ingress', req, 1200n, 1300n));
    expect(out[0].tcpSeq).toBe(9000);
  });

  it('egress: written inside SSL_write (socket BIO) or after it (memory BIO) joins the same way', () => {
    const out: CapturedMessage[] = [];
    const j = new TlsJoiner((m) => out.push(m));
    const resp = 'HTTP/1.1 200 OK\r\n\r\n';
    // nginx: the write syscall ran while SSL_write did, so its record comes first.
    j.onSyscall(cipher('egress', 100, records(resp.length + 17), { enterNs: 1500n }));
    j.onPlaintext(plain('egress', resp, 1400n, 1600n));
    // Node: SSL_write returned before the write.
    j.onPlaintext(plain('egress', resp, 2000n, 2100n));
    expect(out).toHaveLength(1);
    j.onSyscall(cipher('egress', 300, records(resp.length + 17), { enterNs: 2200n }));
    expect(out.map((m) => m.tcpSeq)).toEqual([100, 300]);
  });

  it('an egress after a TLS handshake with the next hop keeps the flow id of the request read before it', () => {
    const out: CapturedMessage[] = [];
    const j = new TlsJoiner((m) => out.push(m));
    const req = 'GET /z HTTP/1.1\r\n\r\n';
    const inbound = cipher('ingress', 1, records(req.length + 17));
    j.onSyscall(inbound);
    j.onPlaintext(plain('ingress', req, 1200n, 1300n));
    // Upstream handshake on another socket: the kernel hands the thread a new flow id on that read.
    const hs = cipher('ingress', 50, new Uint8Array([22, 3, 3, 0, 4, 1, 2, 3, 4]), { socketId: 8, role: 'client' });
    j.onSyscall(hs);
    j.onSyscall(cipher('egress', 900, records(req.length + 17), { socketId: 8, role: 'client', enterNs: 3000n, syscallTraceId: hs.syscallTraceId }));
    j.onPlaintext(plain('egress', req, 2900n, 3100n));
    expect(out.filter((m) => m.tls).map((m) => m.syscallTraceId)).toEqual([inbound.syscallTraceId, inbound.syscallTraceId]);
  });
});

describe('ELF symbols for the uprobes', () => {
  it('finds the file offsets of the node binary\'s OpenSSL functions as nm and the load segments say', () => {
    const node = realpathSync(process.execPath);
    const got = elfSymbolOffsets(node, ['SSL_write', 'SSL_read', 'no_such_symbol_here']);
    expect([...got.keys()].sort()).toEqual(['SSL_read', 'SSL_write']);
    // nm prints the virtual address; the offset differs from it by the segment's (vaddr - offset).
    const nm = execFileSync('nm', ['-D', '--defined-only', node], { encoding: 'utf8', maxBuffer: 256 << 20 });
    const vaddr = Number.parseInt(/^([0-9a-f]+) T SSL_write$/m.exec(nm)![1], 16);
    const segs = execFileSync('readelf', ['-lW', node], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim().startsWith('LOAD'))
      .map((l) => l.trim().split(/\s+/))
      .map((f) => ({ offset: Number.parseInt(f[1], 16), vaddr: Number.parseInt(f[2], 16), memsz: Number.parseInt(f[5], 16) }));
    const seg = segs.find((s) => vaddr >= s.vaddr && vaddr < s.vaddr + s.memsz)!;
    expect(got.get('SSL_write')).toBe(vaddr - seg.vaddr + seg.offset);
  });
});

describe('TLS library files: attached once per file, detached with their last user', () => {
  it('attaches a process\'s node binary once for two processes, and detaches it when both exit', async () => {
    const { spawn } = await import('node:child_process');
    const { TlsLibraries } = await import('./tls-libraries.ts');
    const attached = new Map<bigint, string>();
    let next = 1n;
    const host = {
      attachUprobe: (program: string, path: string): bigint => {
        attached.set(next, `${program} ${path}`);
        return next++;
      },
      detach: (link: bigint): void => void attached.delete(link),
    };
    const libs = new TlsLibraries(host, process.pid, () => {});
    const kids = [0, 1].map(() => spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' }));
    try {
      await new Promise((r) => setTimeout(r, 300));
      for (const k of kids) libs.scan(k.pid!);
      const node = [...libs.libraries.values()].filter((l) => l.path === realpathSync(process.execPath));
      expect(node).toHaveLength(1);
      expect(node[0].users.size).toBe(2);
      expect(attached.size).toBe(8); // entry and return of four functions, once
      libs.onExit(kids[0].pid!);
      expect(attached.size).toBe(8);
      libs.onExit(kids[1].pid!);
      expect(attached.size).toBe(0);
      expect(libs.libraries.size).toBe(0);
    } finally {
      for (const k of kids) k.kill('SIGKILL');
      libs.close();
    }
  });
});
