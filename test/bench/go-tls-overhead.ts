/**
 * Cost of the Go crypto/tls uprobes (issue 17) per Conn.Read / Conn.Write call, in one run, modes
 * interleaved so drift hits them equally:
 *   baseline  no agent
 *   no-tls    `riptide agent` with the TLS uprobes off (RIPTIDE_TLS=0): syscall capture only
 *   tls       `riptide agent` with TLS capture (RIPTIDE_TLS=1): uprobes on Write/Read entry and
 *             on each of their RET instructions
 *   probes    the same uprobes with the capture filtered to no process (go-tls-probe-only.ts), so
 *             the programs return at once: the uprobe mechanism alone
 *   probes-first-byte  the same, with the entry probe on the function's first byte (an
 *             instruction the kernel single-steps) instead of the stack check's branch (emulated)
 *
 * A Go TLS echo inside one process (test/capture/go-tls, `gotls bench`) over loopback: the client
 * writes SIZE bytes, the server goroutine reads and writes them back, the client reads; ns per
 * Conn call counts both ends' calls. The agent is filtered to that process (`--filter-pid`), so
 * every call's plaintext goes to the ring: the worst case. The process runs before every agent,
 * so the agent finds it in its start-up scan.
 *
 *   npx tsx test/bench/go-tls-overhead.ts [--rounds 3] [--trips 20000] [--size 64]
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { RIPTIDE, REPO } from '../helpers/agent.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    trips: { type: 'string', default: '20000' },
    size: { type: 'string', default: '64' },
  },
});
const rounds = Number(values.rounds);
const trips = Number(values.trips);
const size = Number(values.size);
const MODES = ['baseline', 'no-tls', 'tls', 'probes', 'probes-first-byte'] as const;
type Mode = (typeof MODES)[number];

function startAgent(mode: Mode, pid: number, exe: string, dataDir: string): Promise<ChildProcess | null> {
  if (mode === 'baseline') return Promise.resolve(null);
  const env = { ...process.env, RIPTIDE_TLS: mode === 'no-tls' ? '0' : '1' };
  const p = mode.startsWith('probes')
      ? spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/bench/go-tls-probe-only.ts'), exe, mode === 'probes' ? 'branch' : 'first-byte'], { cwd: REPO, env, stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(process.execPath, [RIPTIDE, 'agent', '--filter-pid', String(pid), '--port', '0', '--data-dir', dataDir], { cwd: REPO, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let buf = '';
  return new Promise((resolve, reject) => {
    p.stderr!.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('riptide agent: capturing') || buf.includes('ready:')) resolve(p);
    });
    p.once('exit', (code) => reject(new Error(`agent exited ${code}: ${buf}`)));
  });
}

async function stopAgent(p: ChildProcess | null): Promise<void> {
  if (!p) return;
  p.kill('SIGINT');
  await new Promise((r) => p.once('exit', r));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-go-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const bin = join(dir, 'gotls');
  const env = { ...process.env, GOCACHE: join(dir, 'gocache'), GOPATH: join(dir, 'gopath'), GOFLAGS: '-mod=mod', GOPROXY: 'off' };
  execFileSync('go', ['build', '-o', bin, '.'], { cwd: join(REPO, 'test', 'capture', 'go-tls'), env, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const go = spawn(bin, ['bench', String(size), cert, key], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const lines = createInterface({ input: go.stdout! })[Symbol.asyncIterator]();
    const next = async (): Promise<string> => (await lines.next()).value as string;
    if ((await next()) !== 'ready') throw new Error('Go bench did not start');
    const run = async (n: number): Promise<{ ns: number; calls: number }> => {
      go.stdin!.write(`${n}\n`);
      const [ns, calls] = (await next()).split(' ').map(Number);
      return { ns: ns / calls, calls };
    };
    await run(trips / 4); // warm up
    const perCall = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
    let callsPerRound = 0;
    for (let r = 0; r < rounds; r++) {
      for (const mode of MODES) {
        const agent = await startAgent(mode, go.pid as number, bin, mkdtempSync(join(dir, 'agent-')));
        const { ns, calls } = await run(trips);
        callsPerRound = calls;
        perCall.get(mode)!.push(ns);
        await stopAgent(agent);
        process.stderr.write(`round ${r + 1} go-tls ${mode.padEnd(8)} ${ns.toFixed(0)} ns per Conn call\n`);
      }
    }
    console.log(`\nGo crypto/tls uprobes, ${rounds} interleaved rounds, 2 cores`);
    console.log(`TLS echo in one Go process over loopback, ${size}-byte messages, ${trips} round trips (${callsPerRound} Conn.Read/Write calls, both ends) per round`);
    console.log('mode                ns per Conn call (median)   vs baseline   rounds');
    const base = median(perCall.get('baseline')!);
    for (const mode of MODES) {
      const m = median(perCall.get(mode)!);
      console.log(`${mode.padEnd(19)} ${m.toFixed(0).padStart(25)}   ${`${m >= base ? '+' : ''}${(m - base).toFixed(0)} ns`.padStart(11)}   ${perCall.get(mode)!.map((x) => x.toFixed(0)).join(' ')}`);
    }
    console.log(`   → per Conn call with the uprobes attached: +${(median(perCall.get('tls')!) - median(perCall.get('no-tls')!)).toFixed(0)} ns against the agent without them`);
    console.log(`   → of which the bare uprobes (entry + one RET, programs returning at once): +${(median(perCall.get('probes')!) - base).toFixed(0)} ns`);
    console.log(`   → entry probe on the first byte instead of the stack check's branch: +${(median(perCall.get('probes-first-byte')!) - base).toFixed(0)} ns`);
    const ratios = (a: Mode, b: Mode): string => perCall.get(a)!.map((x, i) => (x / perCall.get(b)![i]).toFixed(2)).join(' ');
    console.log(`   per-round ratios (same round): tls/no-tls ${ratios('tls', 'no-tls')}; probes/baseline ${ratios('probes', 'baseline')}; first-byte/branch ${ratios('probes-first-byte', 'probes')}`);
  } finally {
    go.stdin!.end();
    go.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
