/**
 * The first hour of a user: every `riptide` failure is one line on stderr, with the exit code the
 * README documents for its kind (the same code for the same kind in every command), and no secret
 * in anything printed. Each case runs the real CLI (`node agent/cli/riptide.mjs …`) as a user would.
 *
 * Also: --config on every command, per-subcommand `plugin` help, the marketplace token variable,
 * the functions bind default, the options each role lists, and `--output - | head -1` (EPIPE).
 * Only the EPIPE case loads BPF (filtered to a port this test owns); the busy-port agent case fails
 * before any BPF is loaded.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo, Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { REPO, RIPTIDE } from '../helpers/agent.ts';

const SECRET = 's3cret-pw-4711';
/** Per-test limit: a CLI start is ~1 s on a quiet box, far more when the box is shared. */
const SLOW = 120_000;
vi.setConfig({ testTimeout: SLOW });
const QUERY_TOKEN = 'query-api-token-0815';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

interface RunOptions {
  env?: Record<string, string | undefined>;
  /** Run as nobody (uid 65534) with no capabilities. */
  unprivileged?: boolean;
  timeoutMs?: number;
}

let tmp: string;

function spawnCli(args: string[], o: RunOptions = {}): ChildProcess {
  // A clean environment: no RIPTIDE_* from the shell running the tests.
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('RIPTIDE_')) env[k] = v;
  for (const [k, v] of Object.entries(o.env ?? {})) if (v !== undefined) env[k] = v;
  if (o.unprivileged) {
    // tsx keeps a cache under TMPDIR: give nobody a folder of ours so nothing is left in /tmp.
    env.TMPDIR = join(tmp, 'nobody');
    env.HOME = join(tmp, 'nobody');
    return spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, RIPTIDE, ...args], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  }
  return spawn(process.execPath, [RIPTIDE, ...args], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

function runCli(args: string[], o: RunOptions = {}): Promise<Run> {
  const t0 = performance.now();
  const child = spawnCli(args, o);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 110_000);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/**
 * `riptide <args>` for --help, in this process (the same main() the binary runs; help starts
 * nothing, so a process per help text would only cost time).
 */
async function helpOf(args: string[]): Promise<{ code: number; stdout: string }> {
  const { main } = await import('../../agent/cli/main.ts');
  let stdout = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await main(args), stdout };
  } finally {
    process.stdout.write = write;
  }
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

/** Exactly one line on stderr, matching `pattern`, nothing on stdout (unless a report), the exit code, no secret. */
function expectOneLineFailure(r: Run, code: number, pattern: RegExp, o: { report?: boolean } = {}): void {
  const detail = `exit ${r.code}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`;
  expect(lines(r.stderr), detail).toHaveLength(1);
  expect(r.stderr, detail).toMatch(pattern);
  if (!o.report) expect(r.stdout, detail).toBe('');
  expect(r.code, detail).toBe(code);
  expectNoSecret(r);
}

function expectNoSecret(r: Run): void {
  for (const s of [SECRET, QUERY_TOKEN]) {
    expect(r.stdout).not.toContain(s);
    expect(r.stderr).not.toContain(s);
  }
}

function yaml(name: string, text: string): string {
  const f = join(tmp, name);
  writeFileSync(f, text);
  return f;
}

/** A port something else holds (what `--port <busy>` meets). */
let busy: TcpServer;
let busyPort: number;
/** A loopback port nothing listens on (connections are refused). */
let closedPort: number;

/** A stand-in marketplace that records what it was sent and answers with a chosen status. */
let market: Server;
let marketUrl: string;
const marketSeen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'rt-cli-errors-'));
  mkdirSync(join(tmp, 'nobody'));
  chmodSync(join(tmp, 'nobody'), 0o777);
  chmodSync(tmp, 0o755);
  busy = createTcpServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  busyPort = (busy.address() as AddressInfo).port;
  const probe = createTcpServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  // Under /refuse it refuses every token (401); elsewhere it takes the request.
  market = createServer((req, res) => {
    const refuse = (req.url ?? '').startsWith('/refuse');
    if (!refuse) marketSeen.push({ url: req.url ?? '', headers: req.headers });
    req.resume();
    res.writeHead(refuse ? 401 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(refuse ? { error: 'bad token' } : { ok: true }));
  });
  await new Promise<void>((r) => market.listen(0, '127.0.0.1', r));
  marketUrl = `http://127.0.0.1:${(market.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => busy.close(() => r()));
  await new Promise<void>((r) => market.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
});

interface FailureCase {
  name: string;
  args: () => string[];
  env?: () => Record<string, string>;
  unprivileged?: boolean;
  code: number;
  line: RegExp;
  /** The command prints a report on stdout (doctor) besides its one-line verdict on stderr. */
  report?: boolean;
}

const dataDir = (name: string): string[] => ['--data-dir', join(tmp, name)];

const failures: FailureCase[] = [
  // 2: usage
  { name: 'an unknown command', args: () => ['nope'], code: 2, line: /^riptide: unknown command "nope"/ },
  { name: 'an unknown flag', args: () => ['agent', '--nope'], code: 2, line: /^riptide agent: unknown flag --nope/ },
  { name: 'functions --clickhouse-url notaurl', args: () => ['functions', '--clickhouse-url', 'notaurl', ...dataDir('f1')], code: 2, line: /^riptide functions: --clickhouse-url "notaurl" is not a URL/ },
  { name: 'functions --clickhouse-url ftp://x:1', args: () => ['functions', '--clickhouse-url', 'ftp://x:1', ...dataDir('f2')], code: 2, line: /^riptide functions: --clickhouse-url ftp:\/\/x:1: want http:\/\/ or https:\/\// },
  { name: 'query --clickhouse-url ftp://u:<password>@x:1', args: () => ['query', '--clickhouse-url', `ftp://u:${SECRET}@x:1`, ...dataDir('q1')], code: 2, line: /^riptide query: --clickhouse-url ftp:\/\/u:\*\*\*@x:1: want http/ },
  { name: 'up --clickhouse-url notaurl', args: () => ['up', '--clickhouse-url', 'notaurl', ...dataDir('u1')], code: 2, line: /^riptide up: --clickhouse-url "notaurl" is not a URL/ },
  { name: 'agent --store with a bad scheme', args: () => ['agent', '--store', 'ftp://x/y', '--port', '0', ...dataDir('a1')], code: 2, line: /^riptide agent: store "ftp:\/\/x\/y": unsupported scheme/ },
  { name: 'agent --output into a missing folder', args: () => ['agent', '--output', join(tmp, 'no', 'such', 'x.ndjson'), '--port', '0', ...dataDir('a2')], code: 2, line: /^riptide agent: cannot write --output .*ENOENT/ },
  { name: 'plugin with an unknown subcommand', args: () => ['plugin', 'frobnicate'], code: 2, line: /^riptide plugin: unknown subcommand "frobnicate"/ },
  { name: 'plugin build with a flag of another subcommand', args: () => ['plugin', 'build', 'x', '--token', 't'], code: 2, line: /^riptide plugin: build: unknown flag --token \(see riptide plugin build --help\)/ },
  { name: 'agent --clickhouse-url (a flag the agent does not use)', args: () => ['agent', '--clickhouse-url', 'http://ch:8123'], code: 2, line: /^riptide agent: unknown flag --clickhouse-url/ },
  // 3: not permitted
  { name: 'doctor without privileges', args: () => ['doctor'], unprivileged: true, code: 3, line: /^riptide doctor: the agent cannot run here: privileges: not root/, report: true },
  { name: 'agent without privileges', args: () => ['agent', '--port', '0', ...dataDir('a3')], unprivileged: true, code: 3, line: /^riptide agent: cannot capture: privileges: not root/ },
  { name: 'plugin yank with a token the marketplace refuses', args: () => ['plugin', 'yank', 'x@1.0.0', '--marketplace', `${marketUrl}/refuse`, '--token', SECRET], code: 3, line: /^riptide plugin: marketplace 401: bad token/ },
  // 4: unreachable
  { name: 'functions --clickhouse-url http://u:<password>@127.0.0.1:<closed port>', args: () => ['functions', '--clickhouse-url', `http://u:${SECRET}@127.0.0.1:${closedPort}`, '--port', '0', ...dataDir('f3')], code: 4, line: /^riptide functions: cannot open ClickHouse at http:\/\/u:\*\*\*@127\.0\.0\.1:\d+: connect ECONNREFUSED/ },
  { name: 'query with a password in $RIPTIDE_CLICKHOUSE_URL', args: () => ['query', '--port', '0', ...dataDir('q4')], env: () => ({ RIPTIDE_CLICKHOUSE_URL: `http://riptide:${SECRET}@127.0.0.1:${closedPort}` }), code: 4, line: /^riptide query: cannot open ClickHouse at http:\/\/riptide:\*\*\*@127\.0\.0\.1:\d+: connect ECONNREFUSED/ },
  { name: 'plugin search on a marketplace that is not there', args: () => ['plugin', 'search', '--marketplace', `http://127.0.0.1:${closedPort}`], code: 4, line: /^riptide plugin: cannot reach the marketplace at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/ },
  // 5: cannot listen (the same code from every role)
  { name: 'agent --port <busy>', args: () => ['agent', '--port', String(busyPort), ...dataDir('a4')], code: 5, line: /^riptide agent: cannot listen on 127\.0\.0\.1:\d+ for \/metrics: listen EADDRINUSE/ },
  { name: 'query --port <busy>', args: () => ['query', '--port', String(busyPort), ...dataDir('q3')], code: 5, line: /^riptide query: cannot listen on 127\.0\.0\.1:\d+: listen EADDRINUSE/ },
  { name: 'functions --port <busy>', args: () => ['functions', '--port', String(busyPort), '--kubernetes', 'off', ...dataDir('f5')], code: 5, line: /^riptide functions: cannot listen on 127\.0\.0\.1:\d+: listen EADDRINUSE/ },
  { name: 'plugin serve --port <busy>', args: () => ['plugin', 'serve', '--port', String(busyPort), ...dataDir('p1')], code: 5, line: /^riptide plugin: cannot listen on 127\.0\.0\.1:\d+: listen EADDRINUSE/ },
];

describe('every failure is one line with its documented exit code', () => {
  it.concurrent.each(failures)(
    '$name → exit $code',
    async (c) => {
      const r = await runCli(c.args(), { env: c.env?.(), unprivileged: c.unprivileged });
      expectOneLineFailure(r, c.code, c.line, { report: c.report });
    },
  );

  it('the busy-port agent fails before loading any BPF', async () => {
    const r = await runCli(['agent', '--port', String(busyPort), ...dataDir('a5')]);
    expectOneLineFailure(r, 5, /EADDRINUSE/);
    expect(r.stderr).not.toMatch(/capturing|libbpf/);
  });
});

describe('the exit codes are documented', () => {
  const table = ['0  ok', '1  failed', '2  usage', '3  not permitted', '4  unreachable', '5  cannot listen'];

  it('in riptide --help, every command --help and the README', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const row of table) expect(top.stdout).toContain(row);
    for (const c of ['up', 'agent', 'doctor', 'functions', 'query', 'plugin', 'plugin build', 'plugin serve']) {
      const h = await helpOf([...c.split(' '), '--help']);
      expect(h.code).toBe(0);
      for (const row of table) expect(h.stdout, c).toContain(row);
    }
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    for (const [code, word] of [['0', 'ok'], ['1', 'failed'], ['2', 'usage'], ['3', 'not permitted'], ['4', 'unreachable'], ['5', 'cannot listen']]) {
      expect(readme).toMatch(new RegExp(`\\| ${code} \\| ${word}`));
    }
  });
});

describe('--config works on every command', () => {
  const commands: Array<[string, string[]]> = [
    ['up', ['up']],
    ['agent', ['agent']],
    ['doctor', ['doctor']],
    ['functions', ['functions']],
    ['query', ['query']],
    ['plugin', ['plugin', 'search']],
  ];

  it.concurrent.each(commands)('%s reads the file (an unknown key in it is refused)', async (name, args) => {
    const file = yaml(`unknown-${name}.yaml`, 'colour: blue\n');
    const r = await runCli([...args, '--config', file]);
    expectOneLineFailure(r, 2, new RegExp(`^riptide ${name}: config file .*unknown-${name}\\.yaml: unknown key "colour"`));
  });

  it.concurrent('doctor takes a config file shared by every role', async () => {
    const file = yaml('shared-doctor.yaml', `data-dir: ${join(tmp, 'd1')}\nport: 1234\nclickhouse-url: http://riptide:${SECRET}@ch:8123\nstore: file://${tmp}/store\n`);
    const r = await runCli(['doctor', '--config', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ok +privileges: root/m);
    expectNoSecret(r);
  });

  it.concurrent('the agent takes the values it uses from the file and ignores the common ones it does not use', async () => {
    const file = yaml('shared-agent.yaml', `port: ${busyPort}\nclickhouse-url: http://riptide:${SECRET}@ch:8123\ndata-dir: ${join(tmp, 'd2')}\n`);
    const r = await runCli(['agent', '--config', file]);
    expectOneLineFailure(r, 5, new RegExp(`^riptide agent: cannot listen on 127\\.0\\.0\\.1:${busyPort} for /metrics`));
  });

  it.concurrent('plugin takes --marketplace from the file', async () => {
    const file = yaml('plugin.yaml', `marketplace: http://127.0.0.1:${closedPort}\n`);
    const r = await runCli(['plugin', 'search', '--config', file]);
    expectOneLineFailure(r, 4, /^riptide plugin: cannot reach the marketplace at http:\/\/127\.0\.0\.1:\d+/);
  });

  it.concurrent('a password in a config file is not printed', async () => {
    const file = yaml('query-secret.yaml', `clickhouse-url: http://u:${SECRET}@127.0.0.1:${closedPort}\nport: 0\ndata-dir: ${join(tmp, 'd3')}\n`);
    const r = await runCli(['query', '--config', file]);
    expectOneLineFailure(r, 4, /^riptide query: cannot open ClickHouse at http:\/\/u:\*\*\*@127\.0\.0\.1:\d+/);
  });
});

describe('plugin subcommands have their own help', () => {
  const subs: Array<[string, string[], string[]]> = [
    ['build', ['--out', '--runtime'], ['--token', '--marketplace', '--port']],
    ['check', [], ['--out', '--token', '--marketplace']],
    ['keygen', ['--out'], ['--token', '--runtime']],
    ['sign', ['--key'], ['--token', '--marketplace']],
    ['publish', ['--marketplace', '--token', '--key', '--description', 'RIPTIDE_MARKETPLACE_TOKEN'], ['--runtime', '--trusted-key', '--port']],
    ['search', ['--marketplace', '--protocol', '--hook'], ['--token', '--key']],
    ['install', ['--marketplace', '--trusted-key', '--dir', '--data-dir'], ['--token', '--key']],
    ['yank', ['--marketplace', '--token', 'RIPTIDE_MARKETPLACE_TOKEN'], ['--key', '--runtime']],
    ['serve', ['--store', '--publish-token', '--port', '--host', '--max-module-kb'], ['--token ', '--key', '--marketplace']],
  ];

  it.each(subs)('plugin %s --help', async (sub, has, hasNot) => {
    const r = await helpOf(['plugin', sub, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(new RegExp(`^Usage: riptide plugin ${sub}\\b`));
    for (const f of [...has, '--config']) expect(r.stdout, `${sub} lists ${f}`).toContain(f);
    for (const f of hasNot) expect(r.stdout, `${sub} does not list ${f}`).not.toContain(f);
    expect(r.stdout).not.toContain('RIPTIDE_TOKEN]');
  });

  it('plugin --help lists the subcommands and where their flags are', async () => {
    const r = await helpOf(['plugin', '--help']);
    expect(r.code).toBe(0);
    for (const s of subs) expect(r.stdout).toMatch(new RegExp(`^  ${s[0]}\\b`, 'm'));
    expect(r.stdout).toContain('riptide plugin <subcommand> --help');
  });
});

describe('the marketplace token has its own variable', () => {
  it('RIPTIDE_TOKEN (the query API token) is not sent as a publish token', async () => {
    marketSeen.length = 0;
    const r = await runCli(['plugin', 'yank', 'x@1.0.0', '--marketplace', marketUrl], { env: { RIPTIDE_TOKEN: QUERY_TOKEN } });
    expectOneLineFailure(r, 2, /^riptide plugin: yank: --token or RIPTIDE_MARKETPLACE_TOKEN is required/);
    expect(marketSeen).toHaveLength(0);
  });

  it('RIPTIDE_MARKETPLACE_TOKEN is', async () => {
    marketSeen.length = 0;
    const r = await runCli(['plugin', 'yank', 'x@1.0.0', '--marketplace', marketUrl], { env: { RIPTIDE_TOKEN: QUERY_TOKEN, RIPTIDE_MARKETPLACE_TOKEN: 'market-token' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('yanked x@1.0.0: ranges no longer resolve to it\n');
    expect(marketSeen.map((s) => [s.url, s.headers.authorization])).toEqual([['/api/v1/marketplace/plugins/x/1.0.0/yank', 'Bearer market-token']]);
  });

  it('a token the marketplace refuses is exit 3, and not printed', async () => {
    const r = await runCli(['plugin', 'yank', 'x@1.0.0', '--marketplace', `${marketUrl}/refuse`], { env: { RIPTIDE_MARKETPLACE_TOKEN: SECRET } });
    expectOneLineFailure(r, 3, /^riptide plugin: marketplace 401: bad token/);
  });
});

describe('each role lists only the options it uses', () => {
  const uses: Array<[string, string[], string[]]> = [
    ['agent', ['--data-dir', '--port', '--store', '--s3-endpoint', '--bind', '--config'], ['--clickhouse-url']],
    ['functions', ['--data-dir', '--port', '--store', '--s3-endpoint', '--clickhouse-url', '--bind', '--config'], ['--output', '--filter-port']],
    ['query', ['--data-dir', '--port', '--store', '--s3-endpoint', '--clickhouse-url', '--host', '--config'], ['--output', '--adapter']],
    ['up', ['--data-dir', '--port', '--store', '--clickhouse-url', '--config'], ['--adapter', '--output']],
    ['doctor', ['--config'], ['--port', '--data-dir', '--store', '--clickhouse-url']],
  ];

  it.each(uses)('%s --help', async (role, has, hasNot) => {
    const r = await helpOf([role, '--help']);
    expect(r.code).toBe(0);
    const flags = new Set([...r.stdout.matchAll(/^ {2}(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]));
    for (const f of has) expect(flags, `${role} lists ${f}`).toContain(f);
    for (const f of hasNot) expect(flags, `${role} does not list ${f}`).not.toContain(f);
  });
});

describe('functions binds 127.0.0.1 by default, like every other role', () => {
  it('says so in --help', async () => {
    const r = await helpOf(['functions', '--help']);
    expect(r.stdout).toMatch(/--bind <string> .*\(default: 127\.0\.0\.1\)/);
  });

  it('and listens on 127.0.0.1 only', async () => {
    const child = spawnCli(['functions', '--port', '0', '--kubernetes', 'off', '--poll-ms', '60000', ...dataDir('bind')]);
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    let signalled: string | null = null;
    const exited = new Promise<number | null>((r) => child.once('close', (code, sig) => { signalled = sig; r(code); }));
    try {
      const [host, port] = await new Promise<[string, number]>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line: ${stderr}`)), 100_000);
        child.stderr?.on('data', () => {
          const m = /http:\/\/([\d.]+):(\d+)/.exec(stderr);
          if (m) {
            clearTimeout(timer);
            resolve([m[1], Number(m[2])]);
          }
        });
        child.once('close', () => reject(new Error(`exited: ${stderr}`)));
      });
      expect(host).toBe('127.0.0.1');
      // The kernel's view: the listening socket on that port is bound to 127.0.0.1 (0100007F), not 0.0.0.0.
      const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
      const listening = readFileSync('/proc/net/tcp', 'utf8')
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f.length > 3 && f[1].endsWith(`:${hexPort}`) && f[3] === '0A')
        .map((f) => f[1]);
      expect(listening).toEqual([`0100007F:${hexPort}`]);
    } finally {
      child.kill('SIGINT');
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(killer);
      // A failure says how it ended (a signal means it did not exit on its own) and what it printed.
      expect(code, `exit ${code}, signal ${signalled}, stderr:\n${stderr}`).toBe(0);
    }
  });
});

describe('riptide agent --output - | head -1', () => {
  it('stops quietly with status 0 when the reader goes away (EPIPE)', async () => {
    // A server of our own; the agent captures only its port.
    const srv = createServer((_q, s) => s.end('hi'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    const child = spawnCli(['agent', '--output', '-', '--port', '0', '--filter-port', String(port), ...dataDir('epipe')]);
    let stderr = '';
    let out = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    // Like `head -1`: read one line, then close the pipe.
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) child.stdout?.destroy();
    });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (code, signal) => r([code, signal])));
    let traffic: NodeJS.Timeout | undefined;
    const killer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    try {
      await new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (stderr.includes('riptide agent: capturing')) resolve();
        };
        child.stderr?.on('data', check);
        child.once('exit', () => reject(new Error(`agent exited before capturing: ${stderr}`)));
      });
      traffic = setInterval(() => {
        fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => undefined).catch(() => undefined);
      }, 50);
      const [code, signal] = await exited;
      expect(signal, stderr).toBeNull();
      expect(code, stderr).toBe(0);
      expect(JSON.parse(out.split('\n')[0]) as { local_port: number; remote_port: number }).toSatisfy((l: { local_port: number; remote_port: number }) => l.local_port === port || l.remote_port === port);
      expect(lines(stderr), stderr).toEqual([expect.stringMatching(/^riptide agent: capturing on \d+ tracepoints \(ports \d+\)/)]);
    } finally {
      clearTimeout(killer);
      clearInterval(traffic);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
