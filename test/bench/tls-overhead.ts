/**
 * Cost of the TLS uprobes, in one run, modes interleaved so drift hits them equally:
 *   baseline  no agent
 *   no-tls    `riptide agent` with the TLS uprobes off (RIPTIDE_TLS=0): syscall capture only
 *   tls       `riptide agent` as deployed: syscall capture + uprobes on SSL_read/SSL_write
 *   probes    the same uprobes with programs that return at once (tls-probe-only.ts): what the
 *             uprobe mechanism itself costs here, apart from our programs and the agent
 *
 * 1. Per call: a Python process drives OpenSSL through memory BIOs (ssl.SSLObject: SSL_write_ex
 *    and SSL_read_ex, no system calls), 64-byte messages; ns per SSL_write + SSL_read pair. The
 *    agent is filtered to that process, so every call is copied to the ring (the worst case).
 * 2. HTTPS nginx (1 worker) serving a small file, saturated by wrk over loopback (wrk's own
 *    libssl calls hit the uprobes too); requests/s.
 *
 *   npx tsx test/bench/tls-overhead.ts [--rounds 3] [--seconds 5] [--connections 50] [--calls 200000]
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { RIPTIDE, REPO, freePort } from '../helpers/agent.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    calls: { type: 'string', default: '200000' },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const calls = Number(values.calls);
const MODES = ['baseline', 'no-tls', 'tls', 'probes'] as const;
type Mode = (typeof MODES)[number];

const SSL_LOOP = `
import ssl, sys, time
cert, key = sys.argv[1], sys.argv[2]
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain(cert, key)
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname = False; cctx.verify_mode = ssl.CERT_NONE
c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
c = cctx.wrap_bio(c_in, c_out); s = sctx.wrap_bio(s_in, s_out, server_side=True)
def pump():
    d = c_out.read()
    if d: s_in.write(d)
    d = s_out.read()
    if d: c_in.write(d)
for _ in range(20):
    for side in (c, s):
        try: side.do_handshake()
        except ssl.SSLWantReadError: pass
    pump()
msg = b'x' * 64
print('ready', flush=True)
for line in sys.stdin:
    n = int(line)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        c.write(msg)
        s_in.write(c_out.read())
        s.read(64)
    print(time.perf_counter_ns() - t0, flush=True)
`;

function startAgent(mode: Mode, filter: string[], dataDir: string): Promise<ChildProcess | null> {
  if (mode === 'baseline') return Promise.resolve(null);
  const env = { ...process.env, RIPTIDE_TLS: mode === 'tls' ? '1' : '0' };
  const p =
    mode === 'probes'
      ? spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/bench/tls-probe-only.ts')], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(process.execPath, [RIPTIDE, 'agent', ...filter, '--port', '0', '--data-dir', dataDir], { cwd: REPO, env, stdio: ['ignore', 'ignore', 'pipe'] });
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

function wrk(port: number): number {
  const out = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, `https://127.0.0.1:${port}/index.html`], { encoding: 'utf8' });
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!m) throw new Error(`cannot read wrk output:\n${out}`);
  return Number(m[1]);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });

  // 1. per-call cost
  const py = spawn('python3', ['-c', SSL_LOOP, cert, key], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: py.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => (await lines.next()).value as string;
  if ((await next()) !== 'ready') throw new Error('ssl loop did not start');
  const run = async (n: number): Promise<number> => {
    py.stdin!.write(`${n}\n`);
    return Number(await next()) / n;
  };
  await run(calls / 4); // warm up
  const perCall = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    for (const mode of MODES) {
      const agent = await startAgent(mode, ['--filter-pid', String(py.pid)], mkdtempSync(join(dir, 'agent-')));
      const ns = await run(calls);
      perCall.get(mode)!.push(ns);
      await stopAgent(agent);
      process.stderr.write(`round ${r + 1} ssl-loop ${mode.padEnd(8)} ${ns.toFixed(0)} ns per write+read\n`);
    }
  }
  py.stdin!.end();
  py.kill();

  // 2. HTTPS nginx under wrk
  const port = await freePort();
  writeFileSync(join(dir, 'index.html'), 'x'.repeat(612));
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
     events { worker_connections 1024; }
     http { access_log off; keepalive_requests 100000; client_body_temp_path ${dir}; proxy_temp_path ${dir};
            fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
            server { listen 127.0.0.1:${port} ssl; ssl_certificate ${cert}; ssl_certificate_key ${key}; root ${dir}; location / { } } }`,
  );
  const nginx = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 500));
    wrk(port); // warm up
    const rps = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
    for (let r = 0; r < rounds; r++) {
      for (const mode of MODES) {
        const agent = await startAgent(mode, ['--filter-port', String(port)], mkdtempSync(join(dir, 'agent-')));
        const x = wrk(port);
        rps.get(mode)!.push(x);
        await stopAgent(agent);
        process.stderr.write(`round ${r + 1} nginx-https ${mode.padEnd(8)} ${x.toFixed(0)} req/s\n`);
      }
    }

    console.log(`\nTLS uprobes, ${rounds} interleaved rounds, 2 cores`);
    console.log(`1. OpenSSL through memory BIOs (Python ssl.SSLObject), 64-byte messages, ${calls} SSL_write_ex + SSL_read_ex pairs per round`);
    console.log('mode       ns per write+read (median)   vs baseline   rounds');
    const base = median(perCall.get('baseline')!);
    for (const mode of MODES) {
      const m = median(perCall.get(mode)!);
      console.log(`${mode.padEnd(10)} ${m.toFixed(0).padStart(26)}   ${`+${(m - base).toFixed(0)} ns`.padStart(11)}   ${perCall.get(mode)!.map((x) => x.toFixed(0)).join(' ')}`);
    }
    console.log(`   → per SSL_* call with uprobes attached: +${((median(perCall.get('tls')!) - median(perCall.get('no-tls')!)) / 2).toFixed(0)} ns against the agent without them`);
    console.log(`   → of which the bare uprobe + uretprobe (programs returning at once): +${((median(perCall.get('probes')!) - base) / 2).toFixed(0)} ns per call`);
    console.log(`2. HTTPS nginx (1 worker) + wrk -c${connections} over loopback, ${seconds}s per round`);
    console.log('mode       req/s (median)   vs baseline   rounds');
    const rbase = median(rps.get('baseline')!);
    for (const mode of MODES) {
      const m = median(rps.get(mode)!);
      console.log(`${mode.padEnd(10)} ${m.toFixed(0).padStart(14)}   ${((m / rbase) * 100).toFixed(1).padStart(10)}%   ${rps.get(mode)!.map((x) => x.toFixed(0)).join(' ')}`);
    }
  } finally {
    nginx.kill('SIGQUIT');
    await new Promise((r) => setTimeout(r, 300));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
