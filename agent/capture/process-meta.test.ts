import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProcessMetadata, containerIdFromCgroup, startTimeFromStat } from './process-meta.ts';

function fakeProc(root: string, pid: number, name: string, cmd: string[], start: number, cgroup = '0::/user.slice'): void {
  const dir = join(root, String(pid));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'comm'), name + '\n');
  writeFileSync(join(dir, 'cmdline'), cmd.join('\0') + '\0');
  writeFileSync(join(dir, 'cgroup'), cgroup + '\n');
  // A name with spaces and parens must not shift the fields.
  writeFileSync(join(dir, 'stat'), `${pid} (${name} (x) y) S 1 ${pid} ${pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 ${start} 1000 10 18446744073709551615`);
}

describe('ProcessMetadata', () => {
  it('reads name, command line, container id and start time', () => {
    const root = mkdtempSync(join(tmpdir(), 'rt-proc-'));
    const id = 'a'.repeat(64);
    fakeProc(root, 42, 'api', ['/usr/bin/api', '--port', '80'], 777, `0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-${id}.scope`);
    const meta = new ProcessMetadata(root);
    expect(meta.get(42)).toEqual({
      pid: 42,
      startTime: 777,
      name: 'api',
      cmdline: '/usr/bin/api --port 80',
      containerId: id,
      cgroup: `0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-${id}.scope`,
    });
    rmSync(root, { recursive: true });
  });

  it('notices pid reuse by start time after the revalidation period', () => {
    const root = mkdtempSync(join(tmpdir(), 'rt-proc-'));
    fakeProc(root, 7, 'old', ['old'], 100);
    const meta = new ProcessMetadata(root, 1000);
    expect(meta.get(7, 0)?.name).toBe('old');
    // The old process exits and a new one gets pid 7.
    rmSync(join(root, '7'), { recursive: true });
    fakeProc(root, 7, 'new', ['new', '--x'], 200);
    expect(meta.get(7, 500)?.name).toBe('old'); // still inside the revalidation window
    expect(meta.get(7, 1500)).toMatchObject({ name: 'new', cmdline: 'new --x', startTime: 200 });
    rmSync(root, { recursive: true });
  });

  it('forgets a pid at once when the kernel reports its exit or exec', () => {
    const root = mkdtempSync(join(tmpdir(), 'rt-proc-'));
    fakeProc(root, 9, 'first', ['first'], 1);
    const meta = new ProcessMetadata(root, 60_000);
    expect(meta.get(9, 0)?.name).toBe('first');
    fakeProc(root, 9, 'second', ['second'], 2);
    meta.invalidate(9);
    expect(meta.get(9, 1)?.name).toBe('second');
    rmSync(root, { recursive: true });
  });

  it('returns undefined for a process that is gone', () => {
    expect(new ProcessMetadata(mkdtempSync(join(tmpdir(), 'rt-proc-'))).get(123456)).toBeUndefined();
  });

  it('parses container ids from docker, containerd and cgroup v1 paths', () => {
    const id = '0123456789abcdef'.repeat(4);
    expect(containerIdFromCgroup(`0::/system.slice/docker-${id}.scope`)).toBe(id);
    expect(containerIdFromCgroup(`12:pids:/docker/${id}\n11:cpu:/docker/${id}`)).toBe(id);
    expect(containerIdFromCgroup('0::/user.slice/user-0.slice/session-1.scope')).toBe('');
    expect(startTimeFromStat('1 (a b) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5555 0')).toBe(5555);
  });
});
