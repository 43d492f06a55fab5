// The committed object and TypeScript layout are what the sources produce: rebuild both from
// bpf/riptide.bpf.c and the pinned bpf/vmlinux.h with clang + bpftool and compare byte for byte.
// Nothing here reads the running kernel, so the result is the same on every machine with the
// same compiler (Debian 12's clang 14, which test/run.sh installs).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/agent.ts';

describe('bpf build', () => {
  const out = mkdtempSync(join(tmpdir(), 'rt-bpf-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('rebuilds bpf/riptide.bpf.o and agent/capture/layout.generated.ts identically from source', () => {
    const log = execFileSync('bash', [join(REPO, 'bpf', 'build.sh'), out], {
      env: { ...process.env, LAYOUT_OUT: join(out, 'layout.generated.ts'), NET_LAYOUT_OUT: join(out, 'net-layout.generated.ts') },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
    });
    const committed = readFileSync(join(REPO, 'bpf', 'riptide.bpf.o'));
    const rebuilt = readFileSync(join(out, 'riptide.bpf.o'));
    // the build log names the compiler: the first thing to compare when the bytes differ
    expect(rebuilt.length, log).toBe(committed.length);
    expect(rebuilt.equals(committed), log).toBe(true);
    expect(readFileSync(join(out, 'layout.generated.ts'), 'utf8')).toBe(readFileSync(join(REPO, 'agent', 'capture', 'layout.generated.ts'), 'utf8'));
    // the network object (bpf/riptide-net.bpf.c, issue 19) and its layout, the same way
    const net = readFileSync(join(REPO, 'bpf', 'riptide-net.bpf.o'));
    expect(readFileSync(join(out, 'riptide-net.bpf.o')).equals(net), log).toBe(true);
    expect(readFileSync(join(out, 'net-layout.generated.ts'), 'utf8')).toBe(readFileSync(join(REPO, 'agent', 'capture', 'net-layout.generated.ts'), 'utf8'));
  });

  it('builds from the pinned bpf/vmlinux.h, not from the running kernel', () => {
    const header = readFileSync(join(REPO, 'bpf', 'vmlinux.h'), 'utf8');
    expect(header.startsWith('/* bpf/vmlinux.h: kernel types')).toBe(true);
    expect(header).toContain('struct inet_connection_sock {');
    const script = readFileSync(join(REPO, 'bpf', 'build.sh'), 'utf8');
    // the only read of /sys/kernel/btf is behind --regen-vmlinux
    const build = script.slice(script.indexOf('[ -s "$here/vmlinux.h" ]'));
    expect(build).not.toContain('/sys/kernel/btf');
  });
});
