/**
 * Agent overhead on a multi-hop service: the uninstrumented demo system (gateway → orders over
 * HTTP/2 → DNS + payments, gateway → inventory; infra/demo/demo.mjs), driven by wrk through the
 * gateway at a fixed concurrency. Unlike the saturated-nginx case, the services spend most of a
 * request waiting on each other (payments and inventory answer in 1-40 ms), as services behind a
 * gateway do. Baseline and full-agent rounds are interleaved in one run; each prints req/s and
 * latency percentiles, and the agent's CPU per captured message.
 *   npx tsx test/bench/multi-hop-overhead.ts [--rounds 3] [--seconds 8] [--connections 32] [--latency 1]
 *     [--agents old=/tmp/old-tree,new=.]
 * --agents A/B-tests whole agents: each label=DIR runs DIR/agent/cli/riptide.mjs (a checkout with
 * node_modules linked in; "." is this one) as its own mode, interleaved with the baseline. The
 * agent's resident memory (VmRSS at the end of each round) is printed per mode.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO, RIPTIDE, freePort } from '../helpers/agent.ts';
import { cpuSeconds } from '../helpers/proc.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '32' },
    latency: { type: 'string', default: '1' },
    agents: { type: 'string', default: '' },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
/** Scale of the demo services' simulated work (RIPTIDE_DEMO_LATENCY): 1 as shipped, 0 none. */
const latency = values.latency;
const DEMO = join(REPO, 'infra', 'demo', 'demo.mjs');
/** Agent modes: label → checkout whose agent runs. */
const agents: Array<[string, string]> = values.agents
  ? values.agents.split(',').map((kv) => {
      const [label, path] = kv.split('=');
      if (!label || !path) throw new Error(`--agents wants label=DIR[,label=DIR], got ${values.agents}`);
      return [`agent:${label}`, path === '.' ? REPO : path];
    })
  : [['agent', REPO]];
const modes = ['baseline', ...agents.map(([m]) => m)];

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

function waitLine(p: ChildProcess, stream: 'stdout' | 'stderr', re: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    p[stream]!.on('data', (c: Buffer) => {
      buf += c.toString();
      if (re.test(buf)) resolve();
    });
    p.once('exit', (code) => reject(new Error(`exited ${code}: ${buf}`)));
  });
}

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
}

function toMs(v: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(v);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
}

function wrk(port: number): WrkResult {
  const out = execFileSync('wrk', ['-t2', `-c${connections}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/checkout?item=7`], { encoding: 'utf8' });
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
  };
}

async function main(): Promise<void> {
  const ports = { dns: await freePort(), gateway: await freePort(), orders: await freePort(), payments: await freePort(), inventory: await freePort() };
  const services: ChildProcess[] = [];
  for (const role of ['dns', 'payments', 'inventory', 'orders', 'gateway']) {
    const c = spawn(process.execPath, [DEMO, role, JSON.stringify(ports)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RIPTIDE_DEMO_LATENCY: latency } });
    services.push(c);
    await waitLine(c, 'stdout', /listening/);
  }
  wrk(ports.gateway); // warm up
  const servicePids = services.map((s) => s.pid!).join(',');
  const res = new Map<string, WrkResult[]>(modes.map((m) => [m, []]));
  const perMsg = new Map<string, number[]>();
  const rss = new Map<string, number[]>();
  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  for (let r = 0; r < rounds; r++) {
    for (const mode of modes) {
      let agent: ChildProcess | null = null;
      let mport = 0;
      const root = agents.find(([m]) => m === mode)?.[1];
      if (root !== undefined) {
        mport = await freePort();
        const cli = root === REPO ? RIPTIDE : join(root, 'agent', 'cli', 'riptide.mjs');
        // The agent as deployed, keeping to the demo's processes (other jobs may run on the box).
        agent = spawn(process.execPath, [cli, 'agent', '--filter-pid', servicePids, '--port', String(mport), '--data-dir', mkdtempSync(join(tmpdir(), 'rt-mh-'))], {
          cwd: root,
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        await waitLine(agent, 'stderr', /riptide agent: capturing/);
      }
      const cpu0 = agent ? cpuSeconds(agent.pid!) : 0;
      const m0 = agent ? await metric(mport) : 0;
      const w = wrk(ports.gateway);
      res.get(mode)!.push(w);
      if (agent) {
        await new Promise((x) => setTimeout(x, 100));
        const msgs = (await metric(mport)) - m0;
        if (msgs > 0) perMsg.set(mode, [...(perMsg.get(mode) ?? []), ((cpuSeconds(agent.pid!) - cpu0) * 1e6) / msgs]);
        rss.set(mode, [...(rss.get(mode) ?? []), rssMb(agent.pid!)]);
        agent.kill('SIGINT');
        await new Promise((x) => agent!.once('exit', x));
      }
      process.stderr.write(`round ${r + 1} ${mode.padEnd(10)} ${w.rps.toFixed(0)} req/s p50 ${w.p50.toFixed(1)} ms p99 ${w.p99.toFixed(1)} ms\n`);
    }
  }
  for (const s of services) s.kill();
  const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = med(res.get('baseline')!.map((x) => x.rps));
  console.log(`\ndemo system (gateway → orders/h2 → dns + payments, → inventory; simulated work ×${latency}), wrk -t2 -c${connections}, ${rounds} interleaved rounds × ${seconds}s (load average ${load0} at start, ${load1} at end)`);
  for (const [mode, root] of agents) console.log(`  ${mode} = ${root}`);
  console.log('mode         req/s (median)  vs baseline   p50 ms  p99 ms   rounds');
  for (const mode of modes) {
    const xs = res.get(mode)!;
    const m = med(xs.map((x) => x.rps));
    console.log(
      `${mode.padEnd(12)} ${m.toFixed(0).padStart(14)}  ${((m / base) * 100).toFixed(1).padStart(9)}%  ${med(xs.map((x) => x.p50)).toFixed(1).padStart(6)}  ${med(xs.map((x) => x.p99)).toFixed(1).padStart(6)}   ${xs.map((x) => x.rps.toFixed(0)).join(' ')}`,
    );
  }
  for (const [mode, us] of perMsg) console.log(`${mode} CPU per captured message: ${med(us).toFixed(2)} µs (median of rounds)`);
  for (const [mode, mb] of rss) console.log(`${mode} RSS at the end of a round: ${med(mb).toFixed(0)} MiB (median; max ${Math.max(...mb).toFixed(0)})`);
}

async function metric(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^riptide_capture_received_total (\d+)/m.exec(text)?.[1] ?? 0);
}

await main();
