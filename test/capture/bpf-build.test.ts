// The committed object and TypeScript layout are what the sources produce: rebuild both from
// bpf/riptide.bpf.c with clang + bpftool and compare byte for byte.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/agent.ts';

describe('bpf build', () => {
  it('rebuilds bpf/riptide.bpf.o and agent/capture/layout.generated.ts identically from source', () => {
    const out = mkdtempSync(join(tmpdir(), 'rt-bpf-'));
    execFileSync('bash', [join(REPO, 'bpf', 'build.sh'), out], {
      env: { ...process.env, LAYOUT_OUT: join(out, 'layout.generated.ts') },
      stdio: 'pipe',
      timeout: 120_000,
    });
    const committed = readFileSync(join(REPO, 'bpf', 'riptide.bpf.o'));
    const rebuilt = readFileSync(join(out, 'riptide.bpf.o'));
    expect(rebuilt.length).toBe(committed.length);
    expect(rebuilt.equals(committed)).toBe(true);
    expect(readFileSync(join(out, 'layout.generated.ts'), 'utf8')).toBe(readFileSync(join(REPO, 'agent', 'capture', 'layout.generated.ts'), 'utf8'));
  });
});
