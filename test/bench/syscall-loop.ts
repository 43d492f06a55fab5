/**
 * Kernel cost of the capture programs per syscall, A/B between capture objects in one run: a C
 * loop (syscall-loop.c) runs getppid (never hooked), write on /dev/null (hooked, not a socket)
 * and write+read over loopback TCP (captured, port filter on), with no BPF and with each object
 * attached through test/bench/bpf-only.ts, round by round. Prints the loop's CPU ns per iteration
 * and, from bpf_stats, our programs' run time and runs per iteration (other processes' syscalls
 * during the loop are included: read them as an upper bound).
 *   npx tsx test/bench/syscall-loop.ts [--rounds 3] --objects old=/tmp/old.o,new=bpf/riptide.bpf.o
 * A label starting with "probe" loads its object with RIPTIDE_BPF_DIRECT_READS=0.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO, freePort } from '../helpers/agent.ts';
import { bpfObjectsOf } from '../helpers/proc.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, objects: { type: 'string', default: '' } } });
const objects: Array<[string, string | null]> = [['none', null]];
for (const kv of values.objects ? values.objects.split(',') : [`new=${join(REPO, 'bpf/riptide.bpf.o')}`]) {
  const [label, path] = kv.split('=');
  if (!label || !path) throw new Error(`--objects wants label=path[,label=path], got ${values.objects}`);
  objects.push([label, path]);
}
const LOOPS = [
  ['getppid', 1_000_000],
  ['devnull', 1_000_000],
  ['tcp', 200_000],
] as const;

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
  const bin = join(mkdtempSync(join(tmpdir(), 'rt-bench-loop-')), 'syscall-loop');
  execFileSync('gcc', ['-O2', '-Wall', '-o', bin, join(import.meta.dirname, 'syscall-loop.c')]);
  const cpu = new Map<string, number[]>();
  const bpf = new Map<string, number[]>();
  const runs = new Map<string, number[]>();
  const add = (m: Map<string, number[]>, k: string, v: number): void => void m.set(k, [...(m.get(k) ?? []), v]);
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [label, object] of objects) {
      const port = await freePort();
      let helper: ChildProcess | null = null;
      if (object) {
        const env = { ...process.env, RIPTIDE_BPF_OBJECT: object, RIPTIDE_BPF_DIRECT_READS: label.startsWith('probe') ? '0' : '1' };
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
        add(cpu, `${loop} ${label}`, Number(execFileSync(bin, [loop, String(n), String(port)], { encoding: 'utf8' })));
        if (helper && before) {
          const after = progStats(helper.pid!);
          add(bpf, `${loop} ${label}`, (after.ns - before.ns) / n);
          add(runs, `${loop} ${label}`, (after.cnt - before.cnt) / n);
        }
      }
      if (helper) {
        helper.kill('SIGINT');
        await new Promise((r) => helper.once('exit', r));
      }
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`syscall loops, ${values.rounds} interleaved rounds, medians (all rounds in brackets)`);
  console.log('loop     object   CPU ns/iter     BPF ns/iter  BPF runs/iter');
  for (const [loop] of LOOPS) {
    for (const [label] of objects) {
      const k = `${loop} ${label}`;
      const b = bpf.get(k);
      const r = runs.get(k);
      console.log(
        `${loop.padEnd(8)} ${label.padEnd(8)} ${median(cpu.get(k)!).toFixed(0).padStart(11)}  ${b ? median(b).toFixed(0).padStart(14) : '-'.padStart(14)}  ${r ? median(r).toFixed(1).padStart(13) : '-'.padStart(13)}   [${cpu.get(k)!.map((x) => x.toFixed(0)).join(' ')}]`,
      );
    }
  }
}

await main();
