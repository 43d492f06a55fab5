import { Lifecycle } from '../../../lib/lifecycle.ts';
import type { Command } from '../command.ts';
import { ListenError, UnreachableError, UsageError, firstLine } from '../command.ts';
import type { OptionSpec } from '../config.ts';
import { clickhouseUrl, commonOptions, describeClickHouse, loadConfig, renderHelp } from '../config.ts';
import { redact } from '../redact.ts';
import { serveApp } from '../serve.ts';

const options: OptionSpec[] = [
  ...commonOptions.map((o) => (o.name === 'port' ? { ...o, default: 8688, help: 'HTTP port for /healthz, /metrics, the custom tags API and (--adapter http) POST /events' } : o)),
  { name: 'bind', type: 'string', help: 'Address the HTTP server listens on (0.0.0.0 to take events from other hosts)', default: '127.0.0.1' },
  { name: 'adapter', type: 'string', help: 'local: poll the store (embedded default); http: take CloudEvents / S3 notifications on POST /events', default: 'local' },
  { name: 'poll-ms', type: 'number', help: 'How often the local adapter lists the store', default: 1000 },
  { name: 'clickhouse-cluster', type: 'string', help: 'ClickHouse cluster for ON CLUSTER migrations (replicated tables); absent means one server or embedded chDB' },
  { name: 'ttl-days', type: 'number', help: 'Span retention in days (tables are partitioned by time with this TTL)', default: 7 },
  { name: 'id-stripe', type: 'number', help: 'Tag id stripe 0-255: give each replica that writes its own (ids = stripe × 2^24 + n)', default: 0 },
  { name: 'kubernetes', type: 'string', help: 'Watch pods, services and nodes for tags: auto (when in a pod), on, off', default: 'auto' },
  { name: 'skip-migrations', type: 'boolean', help: 'Do not apply schema migrations at start (a Job runs them)' },
];

const command: Command = {
  name: 'functions',
  summary: 'Build spans from batches in the store, encode tags, write ClickHouse',
  help: renderHelp(
    'riptide functions [flags]',
    [
      'Turns the batches agents upload into spans: pairs requests and responses (across slot',
      'boundaries), encodes hosts, processes, pods and services as small integer ids, and writes',
      'riptide.spans and the tag dictionaries to ClickHouse — embedded chDB under --data-dir unless',
      '--clickhouse-url is given. Idempotent: any replica may take any batch, any number of times.',
      '',
      'Serves GET /healthz, GET /metrics, POST|GET /api/v1/custom-tags and, with --adapter http,',
      'POST /events (CloudEvents structured/batch/binary, or S3 event notification bodies).',
      'For AWS Lambda, deploy functions/lambda.ts (handler) instead.',
      '',
      'Examples:',
      '  riptide functions                                    # poll <data-dir>/store, embedded ClickHouse',
      '  riptide functions --store s3://traces/prod --clickhouse-url http://user:pw@ch:8123 --adapter http',
    ].join('\n'),
    options,
  ),
  async run(argv) {
    const cfg = loadConfig(argv, options);
    if (cfg.positionals.length) throw new UsageError(`unexpected argument "${cfg.positionals[0]}"`);
    const adapter = cfg.string('adapter');
    if (adapter !== 'local' && adapter !== 'http') throw new UsageError(`--adapter must be local or http, got "${adapter}"`);
    const k8s = cfg.string('kubernetes');
    if (k8s !== 'auto' && k8s !== 'on' && k8s !== 'off') throw new UsageError(`--kubernetes must be auto, on or off, got "${k8s}"`);
    const stripe = cfg.number('id-stripe') ?? 0;
    if (!Number.isInteger(stripe) || stripe < 0 || stripe > 255) throw new UsageError('--id-stripe must be an integer 0-255');
    const ttlDays = cfg.number('ttl-days') ?? 7;
    if (!Number.isInteger(ttlDays) || ttlDays < 1 || ttlDays > 20000) throw new UsageError('--ttl-days must be an integer 1-20000');
    const port = cfg.number('port') ?? 8688;
    const bind = cfg.string('bind') ?? '127.0.0.1';
    const chUrl = clickhouseUrl(cfg.string('clickhouse-url'));
    const dataDir = cfg.string('data-dir') ?? '.riptide';

    // Loaded here so `riptide functions --help` stays instant.
    const { buildFunctions } = await import('../../../functions/runtime/functions-runtime.ts');
    const { StoreConfigError } = await import('../../shipping/store.ts');
    // Build everything (store, ClickHouse, migrations, registry), then start: watchers and timers,
    // the HTTP server, the polling. A part that fails closes what came before it.
    const life = new Lifecycle();
    const fx = await life
      .build(
        'functions',
        () =>
          buildFunctions({
            dataDir,
            store: cfg.string('store'),
            s3Endpoint: cfg.string('s3-endpoint'),
            clickhouseUrl: chUrl,
            clickhouseCluster: cfg.string('clickhouse-cluster'),
            ttlDays,
            adapter,
            pollMs: cfg.number('poll-ms'),
            idStripe: stripe,
            kubernetes: k8s,
            skipMigrations: cfg.bool('skip-migrations'),
          }),
        (f) => f.close(),
      )
      .catch((err: unknown) => {
        if (err instanceof StoreConfigError) throw new UsageError(err.message);
        throw new UnreachableError(`cannot open ClickHouse ${describeClickHouse(chUrl, dataDir)}: ${firstLine(err)}`);
      });
    await life.start('functions', () => fx.start());
    const http = await life.start('HTTP server', () => serveApp(fx.app.fetch, port, bind), (h) => h.close()).catch((err: unknown) => {
      throw new ListenError(`cannot listen on ${bind}:${port}: ${firstLine(err)}`);
    });
    process.stderr.write(`riptide functions: ${adapter === 'local' ? `polling ${redact(fx.store.url)}` : 'taking events on POST /events'}, ClickHouse ${fx.ch.mode === 'chdb' ? `embedded (${fx.ch.path})` : 'server'}, http://${bind}:${http.port}\n`);
    void fx.runtime?.start();
    await new Promise<void>((res) => {
      const stop = () => res();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    process.stderr.write('riptide functions: stopping\n');
    await life.close();
    return 0;
  },
};

export default command;
