// The hostile-plugin suite under the REAL agent on live traffic. Every module of the catalogue
// (fixtures/hostile-modules.ts) is loaded at once next to well-behaved plugins; real HTTP, tinyrpc
// and raw TCP traffic drives each into its failure. For each: disabled with one clear log line and
// a counted reason on /metrics; the other plugins and capture carry on; the agent's peak RSS stays
// within what its plugins' caps allow; SIGINT still stops it.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, request } from 'node:http';
import type { Server } from 'node:http';
import { createServer as createTcpServer, connect } from 'node:net';
import type { Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TinyRpcClient } from '../../plugins/tinyrpc/demo/client.ts';
import { startServer } from '../../plugins/tinyrpc/demo/server.ts';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { REPO, freePort, startAgent } from '../helpers/agent.ts';
import { GOOD, HOSTILE, LOOP_PARSE_MAGIC } from './fixtures/hostile-modules.ts';
import { writePlugin } from './fixtures/wasm.ts';

const MiB = 1024 * 1024;

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One raw TCP exchange: sends `bytes`, waits for the echo. */
function rawExchange(port: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    s.once('data', () => {
      s.end();
      resolve();
    });
    s.once('error', reject);
  });
}

/** kB figures from /proc/<pid>/status. */
function procStatus(pid: number): { rss: number; hwm: number } {
  const txt = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(txt)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('hostile plugins under the real agent', () => {
  let work: string;
  let agent: RunningAgent;
  let metricsUrl: string;
  let pid: number;
  let atReady: { rss: number; hwm: number };
  let bound: number;
  let errPort: number;
  let rpcPort: number;
  let rawPort: number;
  const servers: Array<Server | TcpServer | { close(): void }> = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'riptide-hostile-'));
    [errPort, rpcPort, rawPort] = [await freePort(), await freePort(), await freePort()];
    const paths: string[] = [];
    for (const h of HOSTILE) paths.push(await writePlugin(work, h.name, h.wasm, h.manifest));
    paths.push(await writePlugin(work, GOOD.name, GOOD.wasm, GOOD.manifest));
    paths.push(join(REPO, 'plugins', 'tinyrpc'), join(REPO, 'plugins', 'http-error-200'));

    servers.push(await new Promise<Server>((r) => {
      const s = createHttpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"error":"card declined"}');
      });
      s.listen(errPort, '127.0.0.1', () => r(s));
    }));
    servers.push(await startServer(rpcPort));
    servers.push(await new Promise<TcpServer>((r) => {
      const s = createTcpServer((sock) => sock.on('data', (d) => sock.write(d)));
      s.listen(rawPort, '127.0.0.1', () => r(s));
    }));

    agent = await startAgent(['--filter-port', [errPort, rpcPort, rawPort].join(','), '--plugin', paths.join(',')]);
    pid = agent.proc.pid!;
    const m = /metrics on (http:\/\/[\d.]+:\d+\/metrics)/.exec(agent.stderr());
    if (!m) throw new Error(`no metrics address in the agent's stderr: ${agent.stderr()}`);
    metricsUrl = m[1];
    atReady = procStatus(pid);
    // what the configuration allows on top of the agent as it started: every plugin at its
    // memory cap (tables are capped too, and tiny) plus slack for V8's heap under traffic
    const pages = HOSTILE.reduce((n, h) => n + (h.manifest.memoryPages ?? 2), 0) + (GOOD.manifest.memoryPages ?? 2) + 16 + 16;
    bound = atReady.hwm + pages * 65536 + 96 * MiB;
  }, 60_000);

  afterAll(async () => {
    for (const s of servers) s.close();
    if (agent && agent.proc.exitCode === null) {
      // a hung agent ignores SIGINT (that was the self-refuel bug): do not hang the test run too
      const stopped = await Promise.race([agent.stop(), new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000))]);
      if (stopped === 'hung') agent.proc.kill('SIGKILL');
    }
    await rm(work, { recursive: true, force: true });
  });

  const disabledLine = (name: string): string[] => agent.stderr().split('\n').filter((l) => l.startsWith(`riptide: plugin ${name}@1.0.0 disabled (`));

  it('refuses the modules that fail at load, each with one log line, before capture starts', () => {
    for (const h of HOSTILE.filter((x) => x.when === 'load')) {
      expect(disabledLine(h.name), `${h.name}: ${h.what}`).toHaveLength(1);
      expect(disabledLine(h.name)[0]).toMatch(new RegExp(`^riptide: plugin ${h.name}@1\\.0\\.0 disabled \\(${h.reason}\\): .+; capture continues without it$`));
    }
  });

  it('disables every hostile plugin on live traffic, promptly, with its reason logged and counted', async () => {
    const client = await TinyRpcClient.connect(rpcPort);
    const t0 = Date.now();
    expect((await get(errPort, '/first')).status).toBe(200);
    await rawExchange(rawPort, Uint8Array.of(LOOP_PARSE_MAGIC, 1, 2, 3, 4));
    expect((await client.call('echo', 'hi')).body).toBe('hi');
    client.close();
    for (const h of HOSTILE) await until(`${h.name} (${h.what}) to be disabled`, () => disabledLine(h.name).length > 0);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(10_000);

    const metrics = await (await fetch(metricsUrl)).text();
    for (const h of HOSTILE) {
      const lines = disabledLine(h.name);
      expect(lines, h.name).toHaveLength(1);
      expect(lines[0], h.what).toMatch(new RegExp(`disabled \\(${h.reason}\\): .+; capture continues without it$`));
      expect(metrics, h.name).toContain(`riptide_plugin_disabled_total{plugin="${h.name}",reason="${h.reason}"} 1`);
      expect(metrics).toContain(`riptide_plugin_active{plugin="${h.name}"} 0`);
    }
    for (const good of ['good', 'tinyrpc', 'http-error-200']) expect(metrics).toContain(`riptide_plugin_active{plugin="${good}"} 1`);
  });

  it('keeps capturing, with the well-behaved plugins still applied', async () => {
    const before = agent.lines.length;
    expect((await get(errPort, '/after')).status).toBe(200);
    const isResp = (l: OutputLine): boolean => l.local_port === errPort && l.direction === 'egress' && l.msg_type === 'response';
    const [resp] = await agent.waitFor((l) => agent.lines.indexOf(l) >= before && isResp(l));
    expect(resp.response_status).toBe('server_error'); // http-error-200
    expect(resp.response_exception).toBe('card declined');
    expect(resp.x_request_id).toBe('hand-ok'); // the hand-built good plugin
    const client = await TinyRpcClient.connect(rpcPort);
    await client.call('echo', 'again');
    client.close();
    await agent.waitFor((l) => agent.lines.indexOf(l) >= before && l.l7_protocol === 'tinyrpc' && l.msg_type === 'request');
  });

  it('stays within the memory the configuration allows, and stops on SIGINT', async () => {
    const now = procStatus(pid);
    process.stderr.write(`hostile suite: agent RSS ${Math.round(atReady.rss / MiB)} MiB at ready, ${Math.round(now.rss / MiB)} MiB now, peak ${Math.round(now.hwm / MiB)} MiB; bound ${Math.round(bound / MiB)} MiB\n`);
    expect(now.hwm).toBeLessThan(bound);
    const stopped = await Promise.race([agent.stop(), new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000))]);
    expect(stopped).toBe(0);
  });
});
