/**
 * Kernel cost of reading goroutine ids (issue 15), A/B in one run: a Go loop (goroutine-loop.go:
 * write + echo + read over loopback TCP, one goroutine each side) with no BPF, with the capture
 * object of main (`old`, thread ids only), with this object while the agent has not described the
 * process (`threads`: one go_procs lookup that misses), and with it described (`goroutines`: two
 * user reads for g and goid, per-goroutine trace state in go_traces). Rounds interleave the
 * configurations. Prints the Go process's CPU ns per round trip and, from bpf_stats, our programs'
 * run time and runs (enter + exit programs) per round trip (other processes' syscalls during the
 * loop are included: an upper bound).
 *   npx tsx test/bench/goroutine-read.ts [--rounds 5] [--iterations 100000] [--old /tmp/old.o]
 * Without --old, the object of the main branch (git show main:bpf/riptide.bpf.o) is used.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO, freePort } from '../helpers/agent.ts';
import { bpfObjectsOf } from '../helpers/proc.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, iterations: { type: 'string', default: '100000' }, old: { type: 'string', default: '' } } });
const N = Number(values.iterations);

function progStats(pid: number): { ns: number; cnt: number } {
  const ids = new Set(bpfObjectsOf(pid).progs);
  const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' })) as Array<{ id: number; run_cnt?: number; run_time_ns?: number }>;
  let ns = 0;
  let cnt = 0;
  for (const p of all) if (ids.has(p.id)) [ns, cnt] = [ns + (p.run_time_ns ?? 0), cnt + (p.run_cnt ?? 0)];
  return { ns, cnt };
}

async function main(): Promise<void> {
  execFileSync('sysctl', ['-q', '-w', 'kernel.bpf_stats_enabled=1']);
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-goroutine-'));
  const bin = join(dir, 'goroutine-loop');
  const env = { ...process.env, GOCACHE: join(dir, 'gocache'), GOPATH: join(dir, 'gopath'), GOFLAGS: '-mod=mod', GOPROXY: 'off', GO111MODULE: 'off' };
  execFileSync('go', ['build', '-o', bin, join(import.meta.dirname, 'goroutine-loop.go')], { env, stdio: 'inherit' });
  let old = values.old;
  if (!old) {
    old = join(dir, 'old.bpf.o');
    writeFileSync(old, execFileSync('git', ['show', 'main:bpf/riptide.bpf.o'], { cwd: REPO, maxBuffer: 1 << 26 }));
  }
  const configs: Array<[string, string | null, boolean]> = [
    ['none', null, false],
    ['old', old, false],
    ['threads', join(REPO, 'bpf/riptide.bpf.o'), false],
    ['goroutines', join(REPO, 'bpf/riptide.bpf.o'), true],
  ];
  const cpu = new Map<string, number[]>();
  const bpf = new Map<string, number[]>();
  const runs = new Map<string, number[]>();
  const add = (m: Map<string, number[]>, k: string, v: number): void => void m.set(k, [...(m.get(k) ?? []), v]);
  try {
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const [label, object, goroutines] of configs) {
        const port = await freePort();
        const loop = spawn(bin, [String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
        const lines = createInterface({ input: loop.stdout });
        const next = (): Promise<string> => new Promise((r) => lines.once('line', r));
        await next(); // ready
        let helper: ChildProcess | null = null;
        if (object) {
          const henv = { ...process.env, RIPTIDE_BPF_OBJECT: object, ...(goroutines ? { RIPTIDE_BENCH_GO_PID: String(loop.pid) } : {}) };
          helper = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/bench/bpf-only.ts'), String(port)], { cwd: REPO, env: henv, stdio: ['ignore', 'pipe', 'pipe'] });
          await new Promise<void>((resolve, reject) => {
            let err = '';
            helper!.stderr!.on('data', (c: Buffer) => {
              err += c.toString();
              if (err.includes('ready')) resolve();
            });
            helper!.once('exit', (code: number | null) => reject(new Error(`bpf-only exited ${code}: ${err}`)));
          });
        }
        loop.stdin.write('20000\n'); // warm-up
        await next();
        const before = helper ? progStats(helper.pid!) : null;
        loop.stdin.write(`${N}\n`);
        add(cpu, label, Number(await next()));
        if (helper && before) {
          const after = progStats(helper.pid!);
          add(bpf, label, (after.ns - before.ns) / N);
          add(runs, label, (after.cnt - before.cnt) / N);
        }
        if (helper) {
          helper.kill('SIGINT');
          await new Promise((r) => helper.once('exit', r));
        }
        loop.kill();
        await new Promise((r) => loop.once('exit', r));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`Go TCP round trips (4 captured syscalls each), ${values.rounds} interleaved rounds of ${N}, medians (all rounds in brackets)`);
  console.log('object       Go CPU ns/rt   BPF ns/rt  BPF runs/rt');
  for (const [label] of configs) {
    const b = bpf.get(label);
    const r = runs.get(label);
    console.log(`${label.padEnd(12)} ${median(cpu.get(label)!).toFixed(0).padStart(12)}  ${b ? median(b).toFixed(0).padStart(10) : '-'.padStart(10)}  ${r ? median(r).toFixed(1).padStart(11) : '-'.padStart(11)}   [${cpu.get(label)!.map((x) => x.toFixed(0)).join(' ')}] [${(b ?? []).map((x) => x.toFixed(0)).join(' ')}]`);
  }
}

await main();
