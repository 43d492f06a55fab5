/**
 * `riptide up` (what `npm start` runs): every role on one host, on embedded defaults.
 *
 *   agent (child process: BPF, parse, ship) → <data-dir>/store → functions (in process, polling)
 *     → embedded chDB under <data-dir>/clickhouse → query API + UI on http://127.0.0.1:8686
 *
 * The agent runs as a child so its ring-buffer drain never waits behind a ClickHouse insert on
 * this event loop; it is told to exclude this process (and the demo load generator is not
 * excluded: its traffic is the point). It is supervised (agent/supervisor.ts): restarted with
 * backoff when it exits or stops answering, while the functions and the query API keep serving.
 * `GET /healthz` is liveness (200; "degraded" with reasons while the agent is down), `GET /readyz`
 * readiness (200 only when capture is live, the functions poll and ClickHouse answers), and
 * `GET /metrics` carries the agent's counters beside ours. Ctrl-C stops the children, detaches
 * BPF, closes chDB.
 *
 * Start-up has two phases (lib/lifecycle.ts): build (the functions' store, ClickHouse, migrations
 * and registry; the apps; the agent's supervisor), then start (the functions' timers and polling,
 * the server, the demo's plugins, the agent, the demo). A part that fails stops and closes every
 * part before it — no child, listener or timer outlives a failed `riptide up`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lifecycle } from '../../../lib/lifecycle.ts';
import type { Command } from '../command.ts';
import { DeniedError, FatalError, ListenError, UnreachableError, UsageError } from '../command.ts';
import type { OptionSpec } from '../config.ts';
import { serveApp } from '../serve.ts';
import { sqlOptions, sqlRunnerOptions } from '../sql-options.ts';
import { clickhouseUrl, commonOptions, loadConfig, renderHelp, storeUrl } from '../config.ts';
import { runPreflight } from '../../capture/preflight.ts';
import { metrics } from '../../metrics.ts';
import { freePort } from '../../net.ts';
import { AgentSupervisor, mergeMetrics } from '../../supervisor.ts';

const RIPTIDE = join(dirname(fileURLToPath(import.meta.url)), '..', 'riptide.mjs');
const DEMO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'infra', 'demo', 'demo.mjs');

const options: OptionSpec[] = [
  ...commonOptions,
  ...sqlOptions,
  { name: 'host', type: 'string', help: 'Address the API and UI listen on', default: '127.0.0.1' },
  { name: 'token', type: 'string', help: 'Require "Authorization: Bearer <token>" on the API' },
  { name: 'demo', type: 'boolean', help: 'Also start a small uninstrumented demo system and a load generator' },
  { name: 'demo-rps', type: 'number', help: 'Requests per second the demo load generator sends', default: 5 },
  { name: 'ttl-days', type: 'number', help: 'Span retention in days', default: 7 },
  { name: 'slot-seconds', type: 'number', help: 'Agent batch slot length in seconds (shorter = fresher spans)', default: 1 },
  { name: 'tls', type: 'boolean', help: 'Capture TLS plaintext through OpenSSL uprobes in the agent (agent --tls; off by default, docs/TLS.md)' },
  { name: 'net-interfaces', type: 'string', help: 'Network spans and TCP health at these interfaces (agent --net-interfaces: names, globs, "veth" for host-side veth ends, "none" for off; the agent\'s default is veth)' },
  { name: 'plugin', type: 'list', help: 'Wasm plugins for the agent: paths, or name@range from this host\'s marketplace' },
  { name: 'trusted-key', type: 'list', help: 'Public keys (files or base64) the agent trusts for marketplace plugins' },
  { name: 'publish-token', type: 'list', help: 'Bearer tokens allowed to publish to the marketplace (none: read-only)' },
];

function step(line: string): void {
  process.stderr.write(`riptide up: ${line}\n`);
}

/** Waits for a line on a child's stderr (or stdout); rejects with what it said if it exits first. */
function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number, stream: 'stderr' | 'stdout' = 'stderr'): Promise<string> {
  return new Promise((res, rej) => {
    let seen = '';
    const timer = setTimeout(() => rej(new Error(`no "${pattern.source}" after ${timeoutMs} ms: ${seen.trim().split('\n').pop() ?? ''}`)), timeoutMs);
    const out = child[stream];
    out?.setEncoding('utf8');
    out?.on('data', (c: string) => {
      seen += c;
      const m = seen.split('\n').find((l) => pattern.test(l));
      if (m) {
        clearTimeout(timer);
        res(m);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(seen.trim().split('\n').filter((l) => !l.startsWith('libbpf:')).pop() ?? `exited with ${code}`));
    });
  });
}

async function stopChild(child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

const command: Command = {
  name: 'up',
  summary: 'Run everything on this host',
  help: renderHelp(
    'riptide up [flags]',
    [
      'Runs the agent, the local object store, the function runtime, embedded ClickHouse (chDB) and the',
      'query API + UI on http://127.0.0.1:8686, on embedded defaults; what `npm start` runs.',
      'Needs root (or CAP_BPF + CAP_PERFMON). Data lives under --data-dir and is reused on the next start.',
      'GET /readyz answers 200 once capture is live, the functions poll and ClickHouse answers (503 with',
      'the reasons before): wait for it before sending traffic you want traced. The agent is restarted',
      'if it exits or hangs; /metrics carries its counters.',
      '',
      'Examples:',
      '  riptide up --demo                         # with a demo system: traces within a minute',
      '  riptide up --data-dir /var/lib/riptide --port 9000',
    ].join('\n'),
    options,
  ),
  async run(argv) {
    const cfg = loadConfig(argv, options);
    const sql = sqlRunnerOptions(cfg);
    if (cfg.positionals.length) throw new UsageError(`unexpected argument "${cfg.positionals[0]}"`);
    const dataDir = resolve(cfg.string('data-dir') ?? '.riptide');
    const port = cfg.number('port') ?? 8686;
    const host = cfg.string('host') ?? '127.0.0.1';
    const url = storeUrl(cfg.string('store'), dataDir);

    const chUrl = clickhouseUrl(cfg.string('clickhouse-url'));
    const pre = runPreflight();
    if (!pre.ok) throw new DeniedError(`cannot capture: ${pre.problem}`);
    step('host checks passed (privileges, BTF, tracefs, libbpf)');
    mkdirSync(dataDir, { recursive: true });

    const children: ChildProcess[] = [];
    let stopping = false;
    const { buildFunctions } = await import('../../../functions/runtime/functions-runtime.ts');
    const { createQueryApp } = await import('../../../functions/query/app.ts');
    const { Hono } = await import('hono');

    // Phase 1: build.
    const life = new Lifecycle();
    const fx = await life
      .build(
        'functions',
        () =>
          buildFunctions({
            dataDir,
            store: url,
            s3Endpoint: cfg.string('s3-endpoint'),
            clickhouseUrl: chUrl,
            ttlDays: cfg.number('ttl-days'),
            adapter: 'local',
            pollMs: 500,
            kubernetes: 'off',
          }),
        (f) => f.close(),
      )
      .catch((err: unknown) => {
        throw new UnreachableError(`cannot start the functions: ${(err as Error).message.split('\n')[0]}`);
      });
    step(`ClickHouse ready (${fx.ch.mode === 'chdb' ? `embedded chDB in ${fx.ch.path}` : 'server'}), schema migrated`);

    // The agent, in its own process, excluding this one (whose API and ClickHouse traffic is not the user's).
    const agentArgs = [RIPTIDE, 'agent', '--exit-with-parent', '--data-dir', dataDir, '--store', url, '--port', '0', '--exclude-pid', String(process.pid), '--slot-seconds', String(cfg.number('slot-seconds') ?? 1)];
    if (cfg.string('s3-endpoint')) agentArgs.push('--s3-endpoint', cfg.string('s3-endpoint') as string);
    if (cfg.bool('tls')) agentArgs.push('--tls');
    if (cfg.string('net-interfaces') !== undefined) agentArgs.push('--net-interfaces', cfg.string('net-interfaces') as string);
    for (const p of cfg.list('plugin')) agentArgs.push('--plugin', p);
    if (cfg.list('plugin').some((p) => p.includes('@'))) agentArgs.push('--marketplace', `http://127.0.0.1:${port}`);
    for (const k of cfg.list('trusted-key')) agentArgs.push('--trusted-key', k);
    const agent = await life.build('agent supervisor', () => new AgentSupervisor({ spawn: () => spawn(process.execPath, agentArgs, { stdio: ['ignore', 'inherit', 'pipe'] }), log: step }), (a) => a.stop());
    life.defer('demo', () => Promise.all(children.map((c) => stopChild(c))));

    // One server: the query API + UI, with the functions' routes (custom tags) beside it, and
    // /metrics with the agent's counters.
    const app = new Hono();
    app.get('/metrics', async (c) => c.text(mergeMetrics(metrics.render(), (await agent.scrape()) ?? ''), 200, { 'content-type': 'text/plain; version=0.0.4' }));
    app.route(
      '/',
      createQueryApp({
        clickhouse: fx.ch,
        token: cfg.string('token'),
        sql,
        healthy: () => !stopping && (fx.runtime?.healthy() ?? true),
        degraded: () => [agent.problem()].filter((r): r is string => r !== null),
        ready: async () => [stopping ? 'stopping' : null, agent.problem(), ...(await fx.ready())].filter((r): r is string => r !== null),
        // The marketplace keeps plugins in the same object store, under plugins/.
        marketplace: { store: fx.store, publishTokens: cfg.list('publish-token') },
        otlpWindow: { maxAgeMs: (cfg.number('ttl-days') ?? 7) * 86400e3 },
        // OTLP spans through the functions' tag encoder and writer: one id per service.
        writer: fx.processor.writer,
        // The demo's services first on the map (the browser, curl and test tools of the host behind a toggle).
        ui: cfg.bool('demo') ? { focus: { label: 'the demo services', prefixes: ['demo-'] } } : undefined,
      }),
    );

    // Phase 2: start, in order; any failure stops and closes everything above.
    await life.start('functions', () => fx.start());
    void fx.runtime?.start();
    step(`functions polling ${url}`);
    await life.start('API server', () => serveApp(app.fetch, port, host), (h) => h.close()).catch((err: unknown) => {
      throw new ListenError(`cannot listen on ${host}:${port}: ${(err as Error).message}`);
    });
    step(`query API, UI and plugin marketplace listening on http://${host}:${port}/`);
    if (cfg.bool('demo')) {
      // Something to install on the marketplace page: the example plugins, signed by a demo key.
      const { seedExamplePlugins } = await import('../../../functions/marketplace/seed.ts');
      const seeded = await life.start('example plugins', () => seedExamplePlugins({ store: fx.store, keyPrefix: join(dataDir, 'demo-publisher') }));
      for (const r of seeded.refused) process.stderr.write(`riptide up: example plugin not published: ${r}\n`);
      step(`marketplace: ${seeded.published.length + seeded.present.length} example plugins (demo publisher key ${seeded.keyId}, public key ${seeded.publicKeyFile})`);
    }

    const line = await life.start('agent', () => agent.start()).catch((err: unknown) => {
      throw new FatalError(`the agent did not start: ${(err as Error).message}`);
    });
    step(`agent ${line.replace(/^riptide agent: /, '')}`);

    if (cfg.bool('demo')) {
      await life.start('demo', async () => {
        const ports = { dns: await freePort(), gateway: await freePort(), orders: await freePort(), payments: await freePort(), inventory: await freePort() };
        for (const role of ['dns', 'payments', 'inventory', 'orders', 'gateway'] as const) {
          const c = spawn(process.execPath, [DEMO, role, JSON.stringify(ports)], { stdio: ['ignore', 'pipe', 'inherit'] });
          children.push(c);
          await waitForLine(c, /listening/, 10_000, 'stdout');
        }
        const load = spawn(process.execPath, [DEMO, 'loadgen', JSON.stringify(ports)], {
          stdio: ['ignore', 'ignore', 'inherit'],
          env: { ...process.env, RIPTIDE_DEMO_RPS: String(cfg.number('demo-rps') ?? 5) },
        });
        children.push(load);
        step(`demo system up: gateway on 127.0.0.1:${ports.gateway} (→ orders over HTTP/2 → DNS + payments, → inventory), load ${cfg.number('demo-rps') ?? 5} req/s`);
      });
    }

    process.stderr.write(`riptide up: ready — open http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}/ (Ctrl-C to stop; data in ${dataDir})\n`);
    await new Promise<void>((res) => {
      const stop = (): void => {
        stopping = true; // at once: a Ctrl-C reaches the agent too, and its exit is no reason to restart it
        res();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    step('stopping');
    await life.close();
    step('stopped; BPF programs detached, children ended');
    return 0;
  },
};

export default command;
