// Each of the ten data syscalls, driven by a small C program, is captured with the right
// direction, payload, roles and TCP sequence numbers -- both with kernel structs read by direct
// loads (bpf_rdonly_cast, the default where the kernel has it) and with probe reads only (the
// fallback for older kernels, forced with RIPTIDE_BPF_DIRECT_READS=0).
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { freePort, payloadText, startAgent } from '../helpers/agent.ts';
import { bpfObjectsOf } from '../helpers/proc.ts';

const PAIRS = [
  ['write', 'read'],
  ['writev', 'readv'],
  ['sendto', 'recvfrom'],
  ['sendmsg', 'recvmsg'],
  ['sendmmsg', 'recvmmsg'],
] as const;

/** bpf_probe_read_kernel calls in the agent's rt_enter_read as the kernel runs it, per read mode. */
const probeReads: Record<string, number> = {};

function probeReadCalls(pid: number, name: string): number {
  const ids = new Set(bpfObjectsOf(pid).progs);
  const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' })) as Array<{ id: number; name: string }>;
  const prog = all.find((p) => ids.has(p.id) && p.name === name);
  if (!prog) throw new Error(`agent ${pid} holds no ${name}`);
  const xlated = execFileSync('bpftool', ['prog', 'dump', 'xlated', 'id', String(prog.id)], { encoding: 'utf8' });
  return (xlated.match(/bpf_probe_read_kernel/g) ?? []).length;
}

for (const reads of ['direct', 'probe'] as const) describe(`the ten data syscalls (${reads} reads)`, () => {
  let agent: RunningAgent;
  let port: number;
  let lines: OutputLine[];

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rt-sys-'));
    const bin = join(dir, 'syscalls');
    execFileSync('gcc', ['-O1', '-Wall', '-o', bin, join(import.meta.dirname, 'syscalls.c')]);
    port = await freePort();
    const before = process.env.RIPTIDE_BPF_DIRECT_READS;
    process.env.RIPTIDE_BPF_DIRECT_READS = reads === 'direct' ? '1' : '0'; // the agent inherits our environment
    try {
      agent = await startAgent(['--filter-port', String(port)]);
    } finally {
      if (before === undefined) delete process.env.RIPTIDE_BPF_DIRECT_READS;
      else process.env.RIPTIDE_BPF_DIRECT_READS = before;
    }
    probeReads[reads] = probeReadCalls(agent.proc.pid!, 'rt_enter_read');
    execFileSync(bin, [String(port)], { timeout: 10_000 });
    await agent.waitFor((l) => payloadText(l).startsWith('RT-'), 14);
    lines = agent.lines.filter((l) => payloadText(l).startsWith('RT-SYSCALL'));
  });
  afterAll(async () => {
    await agent?.stop();
  });

  if (reads === 'probe') {
    it('runs the probe-read path when asked, the direct-load one by default', () => {
      expect(probeReads.probe).toBeGreaterThan(probeReads.direct);
    });
  }

  for (const [send, recv] of PAIRS) {
    it(`sees ${send} on the client and ${recv} on the server with the same bytes and TCP sequence`, () => {
      const marker = `RT-SYSCALL ${send}->${recv}`;
      const out = lines.filter((l) => l.syscall === send);
      const inn = lines.filter((l) => l.syscall === recv);
      expect(out).toHaveLength(1);
      expect(inn).toHaveLength(1);
      const [o, i] = [out[0], inn[0]];
      expect(payloadText(o)).toBe(marker);
      expect(payloadText(i)).toBe(marker);
      expect(o.bytes).toBe(marker.length);
      expect(i.bytes).toBe(marker.length);
      expect(o.direction).toBe('egress');
      expect(i.direction).toBe('ingress');
      expect(o.role).toBe('client');
      expect(i.role).toBe('server');
      expect(o.remote_port).toBe(port);
      expect(i.local_port).toBe(port);
      expect(o.local_port).toBe(i.remote_port);
      expect(o.l4).toBe('tcp');
      expect(o.tcp_seq).toBe(i.tcp_seq);
      expect(o.pid).toBe(i.pid);
      expect(o.enter_ns).toBeLessThanOrEqual(o.exit_ns);
    });
  }

  it('numbers bytes consecutively: each message starts where the previous one ended', () => {
    const sends = PAIRS.map(([send]) => lines.find((l) => l.syscall === send)!);
    for (let k = 1; k < sends.length; k++) {
      expect((sends[k - 1].tcp_seq + sends[k - 1].bytes) >>> 0).toBe(sends[k].tcp_seq);
    }
  });

  it('turns each message of a UDP sendmmsg/recvmmsg into its own record, with its peer', () => {
    const mm = agent.lines.filter((l) => payloadText(l).startsWith('RT-MMSG'));
    const sent = mm.filter((l) => l.syscall === 'sendmmsg');
    const got = mm.filter((l) => l.syscall === 'recvmmsg');
    expect(sent.map(payloadText)).toEqual(['RT-MMSG one', 'RT-MMSG second']);
    expect(got.map(payloadText)).toEqual(['RT-MMSG one', 'RT-MMSG second']);
    expect(sent.map((l) => l.bytes)).toEqual([11, 14]);
    for (const l of sent) expect([l.l4, l.remote_ip, l.remote_port, l.tcp_seq]).toEqual(['udp', '127.0.0.1', port, 0]);
    for (const l of got) expect([l.l4, l.local_port, l.remote_port]).toEqual(['udp', port, sent[0].local_port]);
  });

  it('keeps one socket id per socket and a different one per side', () => {
    const clientIds = new Set(lines.filter((l) => l.role === 'client').map((l) => l.socket_id));
    const serverIds = new Set(lines.filter((l) => l.role === 'server').map((l) => l.socket_id));
    expect(clientIds.size).toBe(1);
    expect(serverIds.size).toBe(1);
    expect([...clientIds][0]).not.toBe([...serverIds][0]);
  });
});
