// Start-up checks and clean shutdown: without privileges the agent says so in one line and
// exits non-zero; on SIGINT/SIGTERM every BPF link and program it created is gone.
import { execFileSync, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REPO, RIPTIDE, freePort, startAgent } from '../helpers/agent.ts';
import { bpfExists, bpfObjectsOf } from '../helpers/proc.ts';


describe('agent lifecycle', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`leaves no BPF programs behind after ${signal}`, async () => {
      const agent = await startAgent(['--filter-port', String(await freePort())], 30_000, { tls: true });
      const held = bpfObjectsOf(agent.proc.pid!);
      // 27 programs: ten syscalls × enter/exit, connect × 2, accept, accept4, close, exec, exit.
      expect(held.progs.length).toBeGreaterThanOrEqual(27);
      // 27 tracepoint links, plus the TLS uprobes: entry and return of 4 functions per library
      // file (at least the system libssl and the node binary).
      expect(held.links.length).toBeGreaterThanOrEqual(27 + 2 * 8);
      expect((held.links.length - 27) % 2).toBe(0);
      const progIds = held.progs;
      expect(progIds.every((id) => bpfExists('prog', id))).toBe(true);
      const code = await agent.stop(signal);
      expect(code).toBe(0);
      expect(agent.stderr()).toContain('all BPF programs detached');
      expect(held.links.filter((id) => bpfExists('link', id))).toEqual([]);
      expect(progIds.filter((id) => bpfExists('prog', id))).toEqual([]);
    });
  }

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
    // TLS: uprobes attach here, to the system libssl and to the node binary running this test (static OpenSSL).
    expect(out).toMatch(/yes\s+uprobes: attach \(\d+ library files?/);
    expect(out).toMatch(/libssl\.so[.\d]*: .*SSL_write/);
    expect(out).toContain(`${realpathSync(process.execPath)}: `);
  });

  it('rejects a bad flag with a one-line usage error (exit 2)', () => {
    const r = spawnSync(process.execPath, [RIPTIDE, 'agent', '--capture-bytes', 'lots'], { cwd: REPO, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('riptide agent: --capture-bytes from the command line must be a number, got "lots"');
  });
});
