import { Lifecycle } from '../../../lib/lifecycle.ts';
import type { Command } from '../command.ts';
import { ListenError, UnreachableError, UsageError, firstLine } from '../command.ts';
import { clickhouseUrl, commonOptions, describeClickHouse, loadConfig, renderHelp, storeUrl } from '../config.ts';
import type { OptionSpec } from '../config.ts';
import { serveApp } from '../serve.ts';
import { sqlOptions, sqlRunnerOptions } from '../sql-options.ts';

const options: OptionSpec[] = [
  ...commonOptions,
  ...sqlOptions,
  { name: 'host', type: 'string', help: 'Address to listen on', default: '127.0.0.1' },
  { name: 'token', type: 'string', help: 'Require "Authorization: Bearer <token>" on the API (not on /, /healthz, /metrics)' },
  { name: 'ttl-days', type: 'number', help: 'Span retention when this role creates the schema', default: 7 },
  { name: 'publish-token', type: 'list', help: 'Bearer tokens allowed to publish to the plugin marketplace (kept in --store under plugins/; none: read-only)' },
];

const command: Command = {
  name: 'query',
  summary: 'Serve the query API, Jaeger API, OTLP ingest and web UI',
  help: renderHelp(
    'riptide query [flags]',
    'Serves trace assembly, span search, the service map, read-only SQL, the Jaeger query API, OTLP/HTTP\n' +
      'ingest (POST /v1/traces) and the web UI on http://<host>:<port>/, against a ClickHouse server\n' +
      '(--clickhouse-url) or embedded chDB under --data-dir.',
    options,
  ),
  async run(argv) {
    const cfg = loadConfig(argv, options);
    const sql = sqlRunnerOptions(cfg);
    if (cfg.positionals.length) throw new UsageError(`unexpected argument "${cfg.positionals[0]}"`);
    const url = clickhouseUrl(cfg.string('clickhouse-url'));
    const dataDir = cfg.string('data-dir') ?? '.riptide';
    const { openStore } = await import('../../shipping/store.ts');
    const { resolve } = await import('node:path');
    const { openClickHouse } = await import('../../../functions/storage/clickhouse.ts');
    const { migrate } = await import('../../../functions/storage/migrations.ts');
    const { createQueryApp } = await import('../../../functions/query/app.ts');
    // Build (store, ClickHouse, schema), then start (listen); a failing step closes what came before.
    const life = new Lifecycle();
    const store = await life.build('object store', () => openStore(storeUrl(cfg.string('store'), resolve(dataDir)), { s3Endpoint: cfg.string('s3-endpoint') }), (s) => s.close()).catch((err: unknown) => {
      throw new UsageError(firstLine(err));
    });
    const clickhouse = await life
      .build('ClickHouse', () => openClickHouse(url ? { url } : { dataDir }), (c) => c.close())
      .then(async (ch) => {
        await life.build('migrations', () => migrate(ch, { ttlDays: cfg.number('ttl-days') }));
        return ch;
      })
      .catch((err: unknown) => {
        throw new UnreachableError(`cannot open ClickHouse ${describeClickHouse(url, dataDir)}: ${firstLine(err)}`);
      });
    const app = createQueryApp({
      clickhouse,
      token: cfg.string('token'),
      sql,
      marketplace: { store, publishTokens: cfg.list('publish-token') },
      // OTLP spans older than the retention would land in partitions the TTL drops at once.
      otlpWindow: { maxAgeMs: (cfg.number('ttl-days') ?? 7) * 86400e3 },
    });
    const port = cfg.number('port') ?? 8686;
    const host = cfg.string('host') ?? '127.0.0.1';
    await life.start('HTTP server', () => serveApp(app.fetch, port, host), (h) => h.close()).catch((err: unknown) => {
      throw new ListenError(`cannot listen on ${host}:${port}: ${firstLine(err)}`);
    });
    process.stderr.write(`riptide query: listening on http://${host}:${port}/ (ClickHouse: ${url ? 'server' : 'embedded chDB'})\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await life.close();
    return 0;
  },
};

export default command;
