// Start-up checks and clean shutdown: without privileges the agent says so in one line and
// exits non-zero; on SIGINT/SIGTERM every BPF link and program it created is gone.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REPO, RIPTIDE, freePort, startAgent } from '../helpers/agent.ts';
import { bpfExists, bpfObjectsOf } from '../helpers/proc.ts';

/** Whether a process exists (signal 0); a zombie counts as gone once its parent reaps it. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('agent lifecycle', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`leaves no BPF programs behind after ${signal}`, async () => {
      const agent = await startAgent(['--filter-port', String(await freePort())], 30_000, { tls: true });
      const held = bpfObjectsOf(agent.proc.pid!);
      // 27 programs: ten syscalls × enter/exit, connect × 2, accept, accept4, close, exec, exit;
      // and network capture's 4, on by default (TC ingress/egress, 2 TCP health tracepoints).
      expect(held.progs.length).toBeGreaterThanOrEqual(27 + 4);
      // 27 tracepoint links, plus the TLS uprobes: entry and return of 4 functions per OpenSSL
      // library file (at least the system libssl and the node binary), and for any Go executable
      // with crypto/tls that runs on the host an entry and one probe per RET instruction (no fixed
      // parity, so only the lower bound is checked).
      // Plus the 2 TCP health tracepoint links (and a tcx link per host-side veth end, if any).
      expect(held.links.length).toBeGreaterThanOrEqual(27 + 2 + 2 * 8);
      const progIds = held.progs;
      expect(progIds.every((id) => bpfExists('prog', id))).toBe(true);
      const code = await agent.stop(signal);
      expect(code).toBe(0);
      expect(agent.stderr()).toContain('all BPF programs detached');
      expect(held.links.filter((id) => bpfExists('link', id))).toEqual([]);
      expect(progIds.filter((id) => bpfExists('prog', id))).toEqual([]);
    });
  }

  it('with --exit-with-parent, stops and detaches when its parent is SIGKILLed (no agent outlives a supervisor)', async () => {
    // A shell stands in for the supervisor (riptide up, a test worker): it starts the agent, prints
    // the agent's pid, and is then killed without a chance to clean up.
    const port = await freePort();
    const sh = spawn('sh', ['-c', `${JSON.stringify(process.execPath)} ${JSON.stringify(RIPTIDE)} agent --exit-with-parent --output /dev/null --port 0 --filter-port ${port} 2>&1 & echo $!; wait`], { cwd: REPO, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const started = Date.now();
    while (!/capturing/.test(out) && Date.now() - started < 30_000) await sleep(100);
    const agentPid = Number(out.split('\n')[0]);
    expect(out).toContain('capturing');
    const held = bpfObjectsOf(agentPid);
    expect(held.links.length).toBeGreaterThanOrEqual(27);
    sh.kill('SIGKILL');
    const killed = Date.now();
    while (alive(agentPid) && Date.now() - killed < 15_000) await sleep(100);
    expect(alive(agentPid)).toBe(false);
    expect(held.links.filter((id) => bpfExists('link', id))).toEqual([]);
  });

  it('refuses to start without privileges, in one clear line, with a non-zero exit', () => {
    // setpriv drops to nobody with no capabilities, as an unprivileged user would run it.
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, RIPTIDE, 'agent', '--output', '-', '--port', '0'], {
      cwd: REPO,
      encoding: 'utf8',
      env: { ...process.env, HOME: '/tmp', TSX_TSCONFIG_PATH: undefined },
      timeout: 30_000,
    });
    expect(r.status).toBe(3); // exit 3: not permitted (README, exit codes)
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^riptide agent: cannot capture: privileges: not root and missing CAP_BPF \+ CAP_PERFMON/);
  });

  it('doctor reports the baseline and the optional hooks it probed', () => {
    const out = execFileSync(process.execPath, [RIPTIDE, 'doctor'], { cwd: REPO, encoding: 'utf8' });
    expect(out).toMatch(/ok\s+privileges: root/);
    expect(out).toMatch(/ok\s+kernel BTF/);
    expect(out).toMatch(/syscall tracepoints \(baseline\): program type loads/);
    // kprobes and fentry are absent on these kernels: reported, not required.
    expect(out).toMatch(/kprobes:/);
    expect(out).toMatch(/fentry\/fexit/);
    // network capture, on by default: the object loads, TC attaches (tried on lo), what the default matches
    expect(out).toMatch(/yes\s+network object: loads \(\d+ ms/);
    expect(out).toMatch(/yes\s+TCP health: tcp:tcp_retransmit_skb/);
    expect(out).toMatch(/yes\s+TC attach: tcx \(tried on lo, detached\)/);
    expect(out).toMatch(/default "veth" matches now: /);
    // TLS: uprobes attach here, to the system libssl and to the node binary running this test (static OpenSSL).
    expect(out).toMatch(/yes\s+uprobes: attach \(\d+ files?: OpenSSL's/);
    expect(out).toMatch(/libssl\.so[.\d]*: .*SSL_write/);
    expect(out).toContain(`${realpathSync(process.execPath)}: `);
  });

  it('rejects a bad flag with a one-line usage error (exit 2)', () => {
    const r = spawnSync(process.execPath, [RIPTIDE, 'agent', '--capture-bytes', 'lots'], { cwd: REPO, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('riptide agent: --capture-bytes from the command line must be a number, got "lots"');
  });
});
