/**
 * Agent overhead on the worst case: nginx serving a small static file, saturated by wrk over
 * loopback. Modes run interleaved in one run so drift hits them equally:
 *   baseline  no BPF at all
 *   bpf-only  programs attached, ring drained without decoding (kernel cost)
 *   agent     the full agent as deployed: `riptide agent` decoding, parsing, batching and shipping
 *             to a local object store (pass --agent-args "--output /dev/null" to measure the
 *             NDJSON debugging path instead)
 * Prints requests/s per mode (median of rounds), the ratio to baseline, the agent's CPU time
 * per captured message, and the kernel time of our BPF programs per request (bpf_stats).
 * --objects A/B-tests capture objects in the same run: each label=path gets its own bpf-only and
 * agent modes (RIPTIDE_BPF_OBJECT), interleaved with the others; --no-agent skips agent modes.
 *   npx tsx test/bench/nginx-overhead.ts [--rounds 3] [--seconds 5] [--connections 50]
 *     [--objects old=/tmp/old.o,new=bpf/riptide.bpf.o] [--no-agent]
 * A label starting with "handoff" loads its object with the hand-off hook attached (--handoff).
 * --agents A/B-tests whole agents (user-space code and the object beside it): each label=DIR runs
 * DIR/agent/cli/riptide.mjs as its own agent mode (DIR a checkout, e.g. `git archive <commit> |
 * tar -x -C DIR` with node_modules linked in), interleaved with the others; "." is this checkout.
 *   npx tsx test/bench/nginx-overhead.ts --agents old=/tmp/old-tree,new=. \
 *     --objects old=/tmp/old-tree/bpf/riptide.bpf.o,new=bpf/riptide.bpf.o
 * The agent's resident memory (VmRSS at the end of each round) is printed per agent mode.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RIPTIDE, REPO, freePort } from '../helpers/agent.ts';
import { bpfObjectsOf, cpuSeconds } from '../helpers/proc.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    'agent-args': { type: 'string', default: '' },
    objects: { type: 'string', default: '' },
    'no-agent': { type: 'boolean', default: false },
    agents: { type: 'string', default: '' },
  },
});
/** label → object path; '' is the default object (no RIPTIDE_BPF_OBJECT override). */
const objects: Array<[string, string]> = values.objects
  ? values.objects.split(',').map((kv) => {
      const [label, path] = kv.split('=');
      if (!label || !path) throw new Error(`--objects wants label=path[,label=path], got ${values.objects}`);
      return [label, path];
    })
  : [['', '']];
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);

type Kind = 'baseline' | 'bpf-only' | 'agent';
interface Mode {
  name: string;
  kind: Kind;
  object: string;
  /** The checkout whose agent runs (agent modes; default this one). */
  root?: string;
}
/** label → checkout for --agents. */
const agents: Array<[string, string]> = values.agents
  ? values.agents.split(',').map((kv) => {
      const [label, path] = kv.split('=');
      if (!label || !path) throw new Error(`--agents wants label=DIR[,label=DIR], got ${values.agents}`);
      return [label, path === '.' ? REPO : path];
    })
  : [];
const modes: Mode[] = [{ name: 'baseline', kind: 'baseline', object: '' }];
for (const kind of values['no-agent'] ? (['bpf-only'] as const) : agents.length ? (['bpf-only'] as const) : (['bpf-only', 'agent'] as const)) {
  for (const [label, object] of objects) modes.push({ name: label ? `${kind}:${label}` : kind, kind, object });
}
if (!values['no-agent']) for (const [label, root] of agents) modes.push({ name: `agent:${label}`, kind: 'agent', object: '', root });

/** Resident memory of a process in MiB (VmRSS). */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

async function waitForLine(p: ChildProcess, text: string): Promise<void> {
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    p.stderr!.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes(text)) resolve();
    });
    p.once('exit', (code) => reject(new Error(`exited ${code}: ${buf}`)));
  });
}

function wrk(port: number): { rps: number; requests: number } {
  const out = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}/index.html`], { encoding: 'utf8' });
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const n = /(\d+) requests in/.exec(out);
  if (!m || !n) throw new Error(`cannot read wrk output:\n${out}`);
  return { rps: Number(m[1]), requests: Number(n[1]) };
}

/** Per-program kernel run time (needs kernel.bpf_stats_enabled=1) for the programs a process holds. */
function bpfStats(pid: number): Map<string, { cnt: number; ns: number }> {
  const ids = new Set(bpfObjectsOf(pid).progs);
  const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' })) as Array<{ id: number; name: string; run_cnt?: number; run_time_ns?: number }>;
  const out = new Map<string, { cnt: number; ns: number }>();
  for (const p of all) if (ids.has(p.id)) out.set(p.name, { cnt: p.run_cnt ?? 0, ns: p.run_time_ns ?? 0 });
  return out;
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

async function main(): Promise<void> {
  execFileSync('sysctl', ['-q', '-w', 'kernel.bpf_stats_enabled=1']);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-nginx-'));
  writeFileSync(join(dir, 'index.html'), 'x'.repeat(612));
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
     events { worker_connections 1024; }
     http { access_log off; keepalive_requests 100000; client_body_temp_path ${dir}; proxy_temp_path ${dir};
            fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
            server { listen 127.0.0.1:${port}; root ${dir}; location / { } } }`,
  );
  const nginx = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
  // A mode that fails (an agent or a capture load that throws) ends the run: do not leave nginx
  // serving behind it (SIGTERM: the master stops its worker too).
  process.once('exit', () => {
    if (nginx.exitCode === null && nginx.signalCode === null) nginx.kill('SIGTERM');
  });
  await new Promise((r) => setTimeout(r, 500));
  wrk(port); // warm up

  const results = new Map<string, number[]>(modes.map((m) => [m.name, []]));
  /** Per mode: program name → run count and kernel ns, summed over rounds; and requests served. */
  const progTotals = new Map<string, Map<string, { cnt: number; ns: number }>>();
  const requests = new Map<string, number>();
  const perMessageUs = new Map<string, number[]>();
  const bpfRecords = new Map<string, number>();
  const messagesPerRequest = new Map<string, number[]>();
  const rss = new Map<string, number[]>();
  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  for (let round = 0; round < rounds; round++) {
    for (const mode of modes) {
      let helper: ChildProcess | null = null;
      let metricsPort = 0;
      // A label starting with "handoff" attaches the hand-off hook too (RIPTIDE_BPF_HANDOFF=1).
      const label = mode.name.split(':')[1] ?? '';
      const env = { ...process.env, ...(mode.object ? { RIPTIDE_BPF_OBJECT: mode.object } : {}), RIPTIDE_BPF_HANDOFF: label.startsWith('handoff') ? '1' : '0' };
      if (mode.kind === 'bpf-only') {
        helper = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/bench/bpf-only.ts'), String(port)], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
        await waitForLine(helper, 'ready');
      } else if (mode.kind === 'agent') {
        metricsPort = await freePort();
        const extra = values['agent-args'] ? values['agent-args'].split(' ') : ['--data-dir', mkdtempSync(join(tmpdir(), 'rt-bench-agent-'))];
        const root = mode.root ?? REPO;
        const cli = mode.root ? join(root, 'agent', 'cli', 'riptide.mjs') : RIPTIDE;
        helper = spawn(process.execPath, [cli, 'agent', '--filter-port', String(port), '--port', String(metricsPort), ...extra], { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
        await waitForLine(helper, 'riptide agent: capturing');
      }
      const cpu0 = helper ? cpuSeconds(helper.pid!) : 0;
      const msgs0 = mode.kind === 'agent' ? await metric(metricsPort, 'riptide_capture_received_total') : 0;
      const stats0 = helper ? bpfStats(helper.pid!) : new Map<string, { cnt: number; ns: number }>();
      const { rps, requests: served } = wrk(port);
      results.get(mode.name)!.push(rps);
      requests.set(mode.name, (requests.get(mode.name) ?? 0) + served);
      if (helper) {
        const totals = progTotals.get(mode.name) ?? new Map<string, { cnt: number; ns: number }>();
        progTotals.set(mode.name, totals);
        for (const [name, st] of bpfStats(helper.pid!)) {
          const t = totals.get(name) ?? { cnt: 0, ns: 0 };
          const s0 = stats0.get(name) ?? { cnt: 0, ns: 0 };
          totals.set(name, { cnt: t.cnt + st.cnt - s0.cnt, ns: t.ns + st.ns - s0.ns });
        }
        if (mode.kind === 'agent') {
          await new Promise((r) => setTimeout(r, 100));
          const cpu = cpuSeconds(helper.pid!) - cpu0;
          const msgs = (await metric(metricsPort, 'riptide_capture_received_total')) - msgs0;
          if (msgs > 0) perMessageUs.set(mode.name, [...(perMessageUs.get(mode.name) ?? []), (cpu * 1e6) / msgs]);
          messagesPerRequest.set(mode.name, [...(messagesPerRequest.get(mode.name) ?? []), msgs / served]);
          rss.set(mode.name, [...(rss.get(mode.name) ?? []), rssMb(helper.pid!)]);
        }
        const out: Buffer[] = [];
        helper.stdout?.on('data', (c: Buffer) => out.push(c));
        helper.kill('SIGINT');
        await new Promise((r) => helper!.once('exit', r));
        if (mode.kind === 'bpf-only' && out.length) {
          bpfRecords.set(mode.name, (bpfRecords.get(mode.name) ?? 0) + (JSON.parse(Buffer.concat(out).toString()) as { records: number }).records);
        }
      }
      process.stderr.write(`round ${round + 1} ${mode.name.padEnd(14)} ${rps.toFixed(0)} req/s\n`);
    }
  }
  nginx.kill('SIGQUIT');

  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(results.get('baseline')!);
  const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`\nnginx + wrk over loopback, ${rounds} interleaved rounds × ${seconds}s, ${connections} connections, 1 nginx worker, 2 cores (load average ${load0} at start, ${load1} at end)`);
  for (const [label, object] of objects) if (label) console.log(`  ${label} = ${object}`);
  for (const [label, root] of agents) console.log(`  agent:${label} = ${root}`);
  console.log('mode             req/s (median)  vs baseline   rounds');
  for (const mode of modes) {
    const m = median(results.get(mode.name)!);
    console.log(`${mode.name.padEnd(16)} ${m.toFixed(0).padStart(14)}  ${((m / base) * 100).toFixed(1).padStart(9)}%   ${results.get(mode.name)!.map((x) => x.toFixed(0)).join(' ')}`);
  }
  for (const [name, us] of perMessageUs) console.log(`${name} CPU per captured message: ${median(us).toFixed(2)} µs (median of rounds) → ${(1e6 / median(us) / 1000).toFixed(0)}k messages/s per core`);
  for (const [name, n] of messagesPerRequest) console.log(`${name} messages received per request: ${median(n).toFixed(2)}`);
  for (const [name, mb] of rss) console.log(`${name} agent RSS at the end of a round: ${median(mb).toFixed(0)} MiB (median; max ${Math.max(...mb).toFixed(0)})`);
  for (const [name, n] of bpfRecords) console.log(`${name} records drained: ${n}`);
  for (const [name, totals] of progTotals) {
    const busy = [...totals.entries()].filter(([, t]) => t.cnt > 0).sort((a, b) => b[1].ns - a[1].ns);
    if (!busy.length) continue;
    const ns = busy.reduce((a, [, t]) => a + t.ns, 0);
    console.log(`${name}: kernel time of our programs ${(ns / requests.get(name)!).toFixed(0)} ns per request (bpf_stats, all processes); per program invocation:`);
    // The top eight, and the hand-off hook wherever it ranks (a label starting with "handoff").
    for (const [prog, t] of busy.filter(([p], i) => i < 8 || p === 'rt_sched_waking')) {
      console.log(`  ${prog.padEnd(18)} ${(t.ns / t.cnt).toFixed(0).padStart(6)} ns × ${t.cnt} (${((t.ns / requests.get(name)!) | 0)} ns per request)`);
    }
  }
}

await main();
