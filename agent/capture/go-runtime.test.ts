// The goid offset and g's TLS slot, read from real Go binaries built here with Debian's golang-go:
// dynamically linked (cgo), static (CGO_ENABLED=0) and stripped (no DWARF: a clear failure).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GoBinaryError} from './go-runtime.ts';
import { inspectGoBinary } from './go-runtime.ts';
import { GoProcesses, isGoElf } from './go-processes.ts';

const hasGo = fs.existsSync('/usr/bin/go');
if (!hasGo) process.stderr.write('go-runtime test skipped: needs /usr/bin/go (apt-get install golang-go)\n');
let dir = '';
const bin = (n: string): string => path.join(dir, n);

/** The goid offset as binutils reads the DWARF: an independent reader to compare with. */
function readelfGoid(file: string): number {
  const out = execFileSync('readelf', ['-wi', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const at = out.search(/DW_AT_name\s*: runtime\.g\n/);
  const m = /DW_AT_name\s*: goid\n\s*<[0-9a-f]+>\s*DW_AT_data_member_location: (\d+)/.exec(out.slice(at));
  if (!m) throw new Error('readelf shows no runtime.g.goid');
  return Number(m[1]);
}

beforeAll(() => {
  if (!hasGo) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'riptide-goruntime-'));
  fs.writeFileSync(bin('go.mod'), 'module gort\n\ngo 1.19\n');
  fs.writeFileSync(bin('main.go'), 'package main\n\nimport "net/http"\n\nfunc main() { _ = http.ListenAndServe("127.0.0.1:0", nil) }\n');
  const env = { ...process.env, GOCACHE: bin('cache'), GOPATH: bin('gopath'), GOFLAGS: '-mod=mod' };
  execFileSync('go', ['build', '-o', bin('cgo'), '.'], { cwd: dir, env });
  execFileSync('go', ['build', '-o', bin('static'), '.'], { cwd: dir, env: { ...env, CGO_ENABLED: '0' } });
  execFileSync('go', ['build', '-ldflags=-s -w', '-o', bin('stripped'), '.'], { cwd: dir, env });
}, 240_000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasGo)('Go binaries', () => {
  it('reads goid offset, Go version and the TLS slot of g from a cgo binary and a static one', () => {
    const version = execFileSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' }).trim();
    for (const b of ['cgo', 'static']) {
      const info = inspectGoBinary(fs.readFileSync(bin(b)));
      expect(info.version).toBe(version);
      expect(info.goidOffset).toBe(readelfGoid(bin(b)));
      expect(info.gTlsOffset).toBe(-8);
      expect(isGoElf(bin(b))).toBe(true);
    }
  });

  it('says why a stripped binary or a non-Go one yields no goroutine ids', () => {
    expect(() => inspectGoBinary(fs.readFileSync(bin('stripped')))).toThrow(expect.objectContaining({ reason: 'no_dwarf' }) as GoBinaryError);
    expect(() => inspectGoBinary(fs.readFileSync(process.execPath))).toThrow(expect.objectContaining({ reason: 'not_go' }) as GoBinaryError);
    expect(() => inspectGoBinary(Buffer.from('#!/bin/sh\n'))).toThrow(expect.objectContaining({ reason: 'not_elf' }) as GoBinaryError);
    expect(isGoElf(process.execPath)).toBe(false);
    expect(isGoElf(bin('stripped'))).toBe(true);
  });

  it('GoProcesses writes a running Go process once, forgets it on exit and skips other processes', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(bin('cgo'), [], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const writes: Array<[number, number | undefined]> = [];
      const go = new GoProcesses((pid, info) => writes.push([pid, info?.goidOffset]));
      go.scan([child.pid as number, process.pid]);
      go.check(child.pid as number);
      expect(writes).toEqual([[child.pid, readelfGoid(bin('cgo'))]]);
      expect(go.tracked).toBe(1);
      go.forget(child.pid as number);
      expect(writes.at(-1)).toEqual([child.pid, undefined]);
      go.forget(process.pid);
      expect(writes).toHaveLength(2);
      // The same pid with another start time is another process (its exit record was lost): forget, check again.
      const goid = readelfGoid(bin('cgo'));
      go.check(child.pid as number, 100);
      go.check(child.pid as number, 100);
      expect(writes).toHaveLength(3);
      go.check(child.pid as number, 200);
      expect(writes.slice(3)).toEqual([
        [child.pid, undefined],
        [child.pid, goid],
      ]);
    } finally {
      child.kill();
    }
  });
});
