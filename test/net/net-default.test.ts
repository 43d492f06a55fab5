// Network capture is on by default (issue 19): an agent started without --net-interfaces attaches
// to the host-side ends of veth pairs — and to nothing else: not lo, not the NIC, not a veth end
// that carries an address (a namespace's uplink) — and records network spans there; the agent's
// filters apply to those (a parallel test's traffic through the same veths stays out);
// `--net-interfaces none` turns it off.
//
// Two namespaces joined to the host by veth pairs whose host-side ends are wired by
// test/net/relay.py (no delay), as in net-spans.test.ts; a third pair whose host end has an address.
// Names and the /24s are random per run; everything is removed in afterAll.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hono } from 'hono';
import { createQueryApp } from '../../functions/query/app.ts';
import { startFunctions } from '../../functions/runtime/functions-runtime.ts';
import type { Functions } from '../../functions/runtime/functions-runtime.ts';
import type { SpanJson } from '../../functions/query/span.ts';
import { REPO, RIPTIDE, startAgent } from '../helpers/agent.ts';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { bpfObjectsOf } from '../helpers/proc.ts';
import type { Topology } from './topology.ts';
import { createTopology } from './topology.ts';

const isRoot = process.getuid?.() === 0;
const missing = [!isRoot && 'root for BPF and namespaces', !fs.existsSync('/usr/bin/curl') && 'curl', !fs.existsSync('/usr/sbin/ethtool') && 'ethtool', !['/usr/sbin/ip', '/usr/bin/ip'].some((t) => fs.existsSync(t)) && 'iproute2'].filter(Boolean);
if (missing.length) process.stderr.write(`default network capture test skipped: needs ${missing.join(', ')}\n`);

const SERVER = `
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("ok " + self.path + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
`;

type Span = SpanJson & { observation_point: string };

let topo: Topology | undefined;
let dir = '';
let fx: Functions | undefined;
let app: Hono;
/** The test's port, and another one on the same veths that no agent here is asked for. */
const port = 20_000 + Math.floor(Math.random() * 20_000);
const foreignPort = port + 1;
let server: ChildProcess | undefined;
let foreign: ChildProcess | undefined;
let shipping: ChildProcess | undefined;
let shippingErr = '';
const ndjson: RunningAgent[] = [];
// A veth pair into a third namespace whose host end has an address: an uplink, not a pod's end.
const tag = randomBytes(2).toString('hex');
const uplinkNs = `rt19u${tag}`;
const uplinkIf = `rt19${tag}uh`;
const startedAt = Date.now();

function sh(args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

function ifindex(name: string): number {
  return Number(fs.readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
}

/** Interfaces (ifindex) a process holds tcx links on, from its fd table. */
function tcxIfindexes(pid: number): number[] {
  const out = new Set<number>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      const m = /^link_type:\s*tcx$[\s\S]*^ifindex:\s*(\d+)/m.exec(info);
      if (m) out.add(Number(m[1]));
    } catch {
      /* closed meanwhile */
    }
  }
  return [...out].sort((a, b) => a - b);
}

/** The network object's programs. */
const NET_PROGRAM = /^rt_(net|tcp|sock)_/;

/** Names of the BPF programs a process holds. */
function progNames(pid: number): string[] {
  return bpfObjectsOf(pid).progs.map((id) => (JSON.parse(execFileSync('bpftool', ['prog', 'show', 'id', String(id), '-j'], { encoding: 'utf8' })) as { name: string }).name);
}

function curl(url: string): Promise<string> {
  const argv = topo!.inNs(topo!.clientNs, ['curl', '-s', '-m', '10', url]);
  return new Promise((resolve) => execFile(argv[0], argv.slice(1), { timeout: 30_000 }, (_e, out) => resolve(String(out))));
}

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 40_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; agent: ${shippingErr.slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function stop(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

const isNet = (l: OutputLine): boolean => l.pid === 0 && typeof l.observation_point === 'string';

beforeAll(async () => {
  if (missing.length) return;
  topo = await createTopology();
  const net = `10.${200 + (randomBytes(1)[0] % 50)}.${randomBytes(1)[0]}`;
  sh(['ip', 'netns', 'add', uplinkNs]);
  sh(['ip', 'link', 'add', uplinkIf, 'type', 'veth', 'peer', 'name', `${uplinkIf.slice(0, -1)}p`]);
  sh(['ip', 'link', 'set', `${uplinkIf.slice(0, -1)}p`, 'netns', uplinkNs]);
  sh(['ip', 'addr', 'add', `${net}.1/30`, 'dev', uplinkIf]);
  sh(['ip', 'link', 'set', uplinkIf, 'up']);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'riptide-netdef-'));
  fs.writeFileSync(path.join(dir, 'server.py'), SERVER);
  server = spawn('ip', ['netns', 'exec', topo.serverNs, 'python3', path.join(dir, 'server.py'), String(port)], { stdio: 'ignore' });
  foreign = spawn('ip', ['netns', 'exec', topo.serverNs, 'python3', path.join(dir, 'server.py'), String(foreignPort)], { stdio: 'ignore' });
  await topo.relay(0);
  for (const p of [port, foreignPort]) await until(`the server on ${p}`, async () => ((await curl(`http://${topo!.serverIp}:${p}/warm`)) === 'ok /warm\n' ? true : undefined), 20_000);
  fx = await startFunctions({ dataDir: path.join(dir, 'fx'), store: `file://${dir}/store`, pollMs: 500, kubernetes: 'off', log: () => {} });
  await fx.runtime?.start();
  app = createQueryApp({ clickhouse: fx.ch });
  // No --net-interfaces: the default. Filtered to the test's port, as every test agent is.
  shipping = spawn(process.execPath, [RIPTIDE, 'agent', '--agent-id', 'netdef', '--data-dir', path.join(dir, 'agent'), '--store', `file://${dir}/store`, '--port', '0', '--slot-seconds', '1', '--exit-with-parent', '--filter-port', String(port)], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`agent did not start: ${shippingErr}`)), 60_000);
    shipping!.stderr?.on('data', (d: Buffer) => {
      shippingErr = (shippingErr + d.toString()).slice(-8000);
      if (shippingErr.includes('metrics on')) {
        clearTimeout(t);
        resolve();
      }
    });
    shipping!.once('exit', (code) => reject(new Error(`agent exited ${code}: ${shippingErr}`)));
  });
}, 180_000);

afterAll(async () => {
  for (const a of ndjson) await a.stop();
  await stop(shipping);
  await stop(server);
  await stop(foreign);
  await topo?.destroy();
  for (const args of [['ip', 'link', 'del', uplinkIf], ['ip', 'netns', 'del', uplinkNs]]) {
    try {
      sh(args);
    } catch {
      /* already gone (or never made) */
    }
  }
  await fx?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe.skipIf(missing.length > 0)('network capture by default (issue 19)', () => {
  it('attaches to the host-side veth ends, not to lo, the NIC or an addressed uplink veth', async () => {
    const line = shippingErr.split('\n').find((l) => l.includes('riptide agent: capturing')) ?? '';
    expect(line).toMatch(/network spans at \d+ interface\(s\) \(.*, tcx\), TCP health on/);
    const listed = /network spans at \d+ interface\(s\) \(([^)]*), tcx\)/.exec(line)![1].split(',');
    // other tests' veths may be listed too: these are the ones this test knows about
    expect(listed).toEqual(expect.arrayContaining([topo!.serverHostIf, topo!.clientHostIf]));
    for (const not of ['lo', 'eth0', uplinkIf]) expect(listed).not.toContain(not);
    const held = tcxIfindexes(shipping!.pid!);
    expect(held).toEqual(expect.arrayContaining([ifindex(topo!.serverHostIf), ifindex(topo!.clientHostIf)]));
    expect(held).not.toContain(ifindex('lo'));
    expect(held).not.toContain(ifindex(uplinkIf));
    if (fs.existsSync('/sys/class/net/eth0')) expect(held).not.toContain(ifindex('eth0'));
    // the network object is loaded, TCP health tracepoints included
    expect(progNames(shipping!.pid!).filter((n) => NET_PROGRAM.test(n)).sort()).toEqual(['rt_net_egress', 'rt_net_ingress', 'rt_tcp_retransmit', 'rt_tcp_set_state']);
  });

  it('records network spans at both host-side ends for its port, and nothing of a port it was not asked for', async () => {
    for (let i = 1; i <= 3; i++) expect(await curl(`http://${topo!.serverIp}:${port}/default/${i}`)).toBe(`ok /default/${i}\n`);
    for (let i = 1; i <= 3; i++) expect(await curl(`http://${topo!.serverIp}:${foreignPort}/foreign/${i}`)).toBe(`ok /foreign/${i}\n`);
    const all = async (): Promise<Span[]> => (await (await app.request(`/api/v1/spans?start=${Math.floor(startedAt / 1000) - 60}&limit=10000`)).json() as { spans: Span[] }).spans;
    const net = await until('network spans of /default/2 at both host-side ends', async () => {
      const s = (await all()).filter((x) => x.signal_source === 'net' && x.request_resource === '/default/2');
      return new Set(s.map((x) => x.observation_point)).size >= 2 ? s : undefined;
    });
    expect(net.map((s) => s.observation_point).sort()).toEqual([topo!.clientHostIf, topo!.serverHostIf].sort());
    for (const s of net) expect(s).toMatchObject({ server_port: port, pid: 0, agent_id: 'netdef' });
    // the process spans are there too, and the foreign port left nothing: not a process span, not a network one
    const spans = await all();
    expect(spans.some((s) => s.signal_source === 'ebpf' && s.request_resource === '/default/2')).toBe(true);
    expect(spans.filter((s) => s.server_port === foreignPort || (s.request_resource ?? '').startsWith('/foreign'))).toEqual([]);
    expect(spans.filter((s) => s.signal_source === 'net').every((s) => s.server_port === port)).toBe(true);
    // and the kernel counted (did not copy) the foreign segments
    const metricsPort = /metrics on http:\/\/127\.0\.0\.1:(\d+)/.exec(shippingErr)![1];
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const kernelFiltered = Number(/riptide_net_filtered_total\{where="kernel"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    expect(kernelFiltered).toBeGreaterThan(0);
  }, 90_000);

  it('with a pid filter, keeps the network messages of that process\'s connections only', async () => {
    const a = await startAgent(['--filter-pid', String(server!.pid)]);
    ndjson.push(a);
    expect(a.stderr()).toMatch(/network spans at \d+ interface\(s\)/);
    expect(await curl(`http://${topo!.serverIp}:${port}/pid/1`)).toBe('ok /pid/1\n');
    expect(await curl(`http://${topo!.serverIp}:${foreignPort}/pid-foreign/1`)).toBe('ok /pid-foreign/1\n');
    const mine = await a.waitFor((l) => isNet(l) && l.remote_port === port && Buffer.from(l.payload, 'base64').toString('latin1').startsWith('GET /pid/1 '), 2, 20_000).catch((err: Error) => {
      throw new Error(`${err.message}; lines: ${JSON.stringify(a.lines.map((l) => [l.pid, l.observation_point, l.local_port, l.remote_port]))}; stderr: ${a.stderr()}`);
    });
    expect(new Set(mine.map((l) => l.observation_point))).toEqual(new Set([topo!.clientHostIf, topo!.serverHostIf]));
    // Two agents' programs on the same hooks, and both saw the packets: ours pass them on to the
    // next program (TCX_NEXT) instead of ending the chain.
    expect(tcxIfindexes(shipping!.pid!)).toEqual(expect.arrayContaining([ifindex(topo!.serverHostIf), ifindex(topo!.clientHostIf)]));
    expect(tcxIfindexes(a.proc.pid!)).toEqual(expect.arrayContaining([ifindex(topo!.serverHostIf), ifindex(topo!.clientHostIf)]));
    await until('the shipping agent\'s network spans of /pid/1', async () => {
      const { spans } = (await (await app.request(`/api/v1/spans?start=${Math.floor(startedAt / 1000) - 60}&limit=10000`)).json()) as { spans: Span[] };
      const s = spans.filter((x) => x.signal_source === 'net' && x.request_resource === '/pid/1');
      return new Set(s.map((x) => x.observation_point)).size >= 2 ? s : undefined;
    });
    // past the hold (2 s) the foreign connection's messages are gone for good
    await new Promise((r) => setTimeout(r, 3000));
    expect(a.lines.filter(isNet).filter((l) => l.remote_port !== port)).toEqual([]);
    expect(a.lines.filter((l) => l.pid !== 0 && l.pid !== server!.pid)).toEqual([]);
    expect(await a.stop()).toBe(0);
  }, 60_000);

  it('--net-interfaces none: no TC links, no network messages, process capture as before', async () => {
    const a = await startAgent(['--net-interfaces', 'none', '--filter-port', String(port)]);
    ndjson.push(a);
    expect(a.stderr()).not.toMatch(/network spans/);
    expect(tcxIfindexes(a.proc.pid!)).toEqual([]);
    // the syscall object only: none of the network object's programs (TC, TCP health) is loaded
    const names = progNames(a.proc.pid!);
    expect(names.length).toBeGreaterThanOrEqual(27);
    expect(names.filter((n) => NET_PROGRAM.test(n))).toEqual([]);
    expect(await curl(`http://${topo!.serverIp}:${port}/off/1`)).toBe('ok /off/1\n');
    await a.waitFor((l) => l.pid !== 0 && l.local_port === port && Buffer.from(l.payload, 'base64').toString('latin1').startsWith('GET /off/1 '), 1, 20_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(a.lines.filter((l) => l.observation_point !== undefined)).toEqual([]);
    expect(await a.stop()).toBe(0);
  }, 60_000);

  it('the off-switch also comes from RIPTIDE_NET_INTERFACES and from the YAML file, like every option', async () => {
    const yaml = path.join(dir, 'agent.yaml');
    fs.writeFileSync(yaml, 'net-interfaces: none\n');
    for (const [how, extra, env] of [
      ['environment', [], { RIPTIDE_NET_INTERFACES: 'none' }],
      ['YAML', ['--config', yaml], {}],
      ['default', [], {}],
    ] as const) {
      const a = spawn(process.execPath, [RIPTIDE, 'agent', '--output', '/dev/null', '--port', '0', '--exit-with-parent', '--filter-port', String(port), ...extra], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${how}: agent did not start: ${err}`)), 60_000);
        a.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          if (err.includes('metrics on')) {
            clearTimeout(t);
            resolve();
          }
        });
      });
      await stop(a);
      if (how === 'default') expect(err, how).toMatch(/network spans at \d+ interface\(s\).*TCP health on/);
      else expect(err, how).not.toMatch(/network spans|TCP health/);
    }
  }, 120_000);

  it('without CAP_NET_ADMIN (the kernel refuses the TC programs): one line, TCP health kept, capture runs', async () => {
    // root without net_admin/sys_admin in its bounding set: loading SCHED_CLS programs is EPERM
    const a = spawn('setpriv', ['--bounding-set=-net_admin,-sys_admin', process.execPath, RIPTIDE, 'agent', '--output', '-', '--port', '0', '--exit-with-parent', '--filter-port', String(port)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let out = '';
    a.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`agent did not start: ${err}`)), 60_000);
        a.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          if (err.includes('metrics on')) {
            clearTimeout(t);
            resolve();
          }
        });
        a.once('exit', (code) => reject(new Error(`agent exited ${code}: ${err}`)));
      });
      // Drop notices about other processes on the machine (a stripped Go binary another test runs)
      // are not about the network object; everything else must be exactly these two lines.
      const lines = err.trim().split('\n').filter((l) => !l.startsWith('riptide: capture: '));
      expect(lines, err).toHaveLength(2); // the refusal, then the start-up line: no libbpf chatter
      expect(lines[0]).toMatch(/^riptide agent: no network spans: TC programs cannot run here \(.*EPERM.*\); TCP health stays on$/);
      expect(lines[1]).toMatch(/no network spans \(TC refused\), TCP health on/);
      const names = progNames(a.pid!);
      expect(names).toEqual(expect.arrayContaining(['rt_tcp_retransmit', 'rt_tcp_set_state']));
      expect(names).not.toContain('rt_net_ingress');
      expect(tcxIfindexes(a.pid!)).toEqual([]);
      expect(await curl(`http://${topo!.serverIp}:${port}/noadmin/1`)).toBe('ok /noadmin/1\n');
      const deadline = Date.now() + 20_000;
      while (!out.includes('"local_port":' + port) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(out).toContain(`"local_port":${port}`);
      expect(out).not.toContain('"observation_point"');
    } finally {
      await stop(a);
    }
  }, 90_000);
});
