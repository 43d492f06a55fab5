/**
 * Cost of hand-off tracking (the sched_waking hook, `riptide agent --handoff`), A/B in one run: a C
 * program (handoff-loop.c) runs two wake-up loops with no BPF, with the capture program as the agent
 * loads it by default (the hook loaded but not attached), and with --handoff, round by round:
 *   pingpong — two threads waking each other through pipes, no socket: the hook's early exit;
 *   handoff  — client → reader thread (reads a request on an accepted loopback socket) → wakes a
 *              worker through a pipe → worker answers on the socket: every path of the hook;
 *   waitback — the reader waits for the worker, which makes a round trip on a second connection and
 *              wakes the reader back (a completed future): the wake-back recorded and carried.
 * Prints CPU and wall ns per iteration (all threads of the loop), our programs' run time per
 * iteration and the hook's own (bpf_stats; other processes' wake-ups during the loop are included:
 * read them as an upper bound), and the hand-off counters of the last round.
 *   npx tsx test/bench/handoff-wakeups.ts [--rounds 3] [--old-object main.bpf.o]
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO, freePort } from '../helpers/agent.ts';
import { bpfObjectsOf } from '../helpers/proc.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, 'old-object': { type: 'string' } } });
// --old-object PATH: one more variant, `handoff-old`, with --handoff on another object (e.g. main's:
// `git show main:bpf/riptide.bpf.o > /tmp/main.bpf.o`), interleaved with ours in the same rounds.
const oldObject = values['old-object'];
const VARIANTS: readonly string[] = oldObject ? ['none', 'capture', 'handoff-old', 'handoff'] : ['none', 'capture', 'handoff'];
const LOOPS = [
  ['pingpong', 300_000],
  ['handoff', 100_000],
  ['waitback', 50_000],
] as const;

function progStats(pid: number): { ns: number; cnt: number; hookNs: number; hookCnt: number } {
  const ids = new Set(bpfObjectsOf(pid).progs);
  const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' })) as Array<{ id: number; name?: string; run_cnt?: number; run_time_ns?: number }>;
  const out = { ns: 0, cnt: 0, hookNs: 0, hookCnt: 0 };
  for (const p of all) {
    if (!ids.has(p.id)) continue;
    out.ns += p.run_time_ns ?? 0;
    out.cnt += p.run_cnt ?? 0;
    if (p.name === 'rt_sched_waking') {
      out.hookNs += p.run_time_ns ?? 0;
      out.hookCnt += p.run_cnt ?? 0;
    }
  }
  return out;
}

async function main(): Promise<void> {
  execFileSync('sysctl', ['-q', '-w', 'kernel.bpf_stats_enabled=1']);
  const bin = join(mkdtempSync(join(tmpdir(), 'rt-bench-handoff-')), 'handoff-loop');
  execFileSync('gcc', ['-O2', '-Wall', '-pthread', '-o', bin, join(import.meta.dirname, 'handoff-loop.c')]);
  const rows = new Map<string, { cpu: number[]; wall: number[]; bpf: number[]; hook: number[]; hookRuns: number[] }>();
  let counters = '';
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const variant of VARIANTS) {
      const port = await freePort();
      let helper: ChildProcess | null = null;
      if (variant !== 'none') {
        const env: NodeJS.ProcessEnv = { ...process.env, RIPTIDE_BPF_HANDOFF: variant.startsWith('handoff') ? '1' : '0' };
        if (variant === 'handoff-old' && oldObject) env.RIPTIDE_BPF_OBJECT = oldObject;
        helper = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/bench/bpf-only.ts'), String(port)], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
        await new Promise<void>((resolve, reject) => {
          let err = '';
          helper!.stderr!.on('data', (c: Buffer) => {
            err += c.toString();
            if (err.includes('ready')) resolve();
          });
          helper!.once('exit', (code: number | null) => reject(new Error(`bpf-only exited ${code}: ${err}`)));
        });
      }
      for (const [loop, n] of LOOPS) {
        const before = helper ? progStats(helper.pid!) : null;
        const [cpu, wall] = execFileSync(bin, [loop, String(n), String(port)], { encoding: 'utf8' }).trim().split('\n').map(Number);
        const k = `${loop} ${variant}`;
        const r = rows.get(k) ?? { cpu: [], wall: [], bpf: [], hook: [], hookRuns: [] };
        r.cpu.push(cpu);
        r.wall.push(wall);
        if (helper && before) {
          const after = progStats(helper.pid!);
          r.bpf.push((after.ns - before.ns) / n);
          r.hook.push((after.hookNs - before.hookNs) / n);
          r.hookRuns.push((after.hookCnt - before.hookCnt) / n);
        }
        rows.set(k, r);
      }
      if (helper) {
        const out = new Promise<string>((resolve) => {
          let s = '';
          helper!.stdout!.on('data', (c: Buffer) => (s += c.toString()));
          helper!.once('exit', () => resolve(s));
        });
        helper.kill('SIGINT');
        const line = await out;
        if (variant === 'handoff') counters = line.trim();
      }
    }
  }
  rmSync(dirname(bin), { recursive: true, force: true });
  const median = (xs: number[]): string => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(0) : '-');
  const med1 = (xs: number[]): string => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(2) : '-');
  console.log(`wake-up loops, ${values.rounds} interleaved rounds, medians (CPU of all rounds in brackets)`);
  console.log('loop      variant   CPU ns/iter  wall ns/iter  BPF ns/iter  hook ns/iter  hook runs/iter');
  for (const [loop] of LOOPS) {
    for (const variant of VARIANTS) {
      const r = rows.get(`${loop} ${variant}`)!;
      console.log(
        `${loop.padEnd(9)} ${variant.padEnd(9)} ${median(r.cpu).padStart(11)}  ${median(r.wall).padStart(12)}  ${median(r.bpf).padStart(11)}  ${median(r.hook).padStart(12)}  ${med1(r.hookRuns).padStart(14)}   [${r.cpu.map((x) => x.toFixed(0)).join(' ')}]`,
      );
    }
  }
  console.log(`hand-off counters, last --handoff round: ${counters}`);
}

await main();
