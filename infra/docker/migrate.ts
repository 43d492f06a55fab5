/**
 * The image's schema-migration entry point (the Kubernetes Job `riptide-migrate` runs it): applies
 * the versioned migrations of `infra/clickhouse/` through `functions/storage/migrations.ts` and
 * exits. `--cluster NAME` picks the replicated variants (`infra/clickhouse/cluster/`, ON CLUSTER);
 * without it the single-node variants are used. Safe to run again: applied versions are recorded
 * and every statement is IF NOT EXISTS.
 *
 * @example
 *   node --import tsx infra/docker/migrate.ts --clickhouse-url http://default:pw@ch:8123 --cluster riptide
 */
import { pathToFileURL } from 'node:url';
import type { OptionSpec } from '../../agent/cli/config.ts';
import { commonOptions, loadConfig, renderHelp } from '../../agent/cli/config.ts';
import { openClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';

export const migrateOptions: OptionSpec[] = [
  ...commonOptions.filter((o) => o.name === 'config' || o.name === 'data-dir' || o.name === 'clickhouse-url'),
  { name: 'clickhouse-cluster', type: 'string', help: 'ClickHouse cluster name for ON CLUSTER; absent means a single server (or embedded chDB)' },
  { name: 'ttl-days', type: 'number', help: 'Span retention in days (dictionaries keep one day more)', default: 7 },
];

export const migrateHelp = renderHelp(
  'node --import tsx infra/docker/migrate.ts [flags]',
  [
    'Creates or upgrades the riptide database in ClickHouse from infra/clickhouse/ and exits.',
    'With --clickhouse-cluster the replicated variants (infra/clickhouse/cluster/) are applied ON CLUSTER.',
  ].join('\n'),
  migrateOptions,
);

export async function runMigrate(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(migrateHelp + '\n');
    return 0;
  }
  const cfg = loadConfig(argv, migrateOptions, env);
  const url = cfg.string('clickhouse-url');
  const cluster = cfg.string('clickhouse-cluster') || undefined;
  if (cluster && !url) {
    process.stderr.write('riptide migrate: --clickhouse-cluster needs --clickhouse-url (RIPTIDE_CLICKHOUSE_URL)\n');
    return 2;
  }
  const ch = await openClickHouse({ url, dataDir: cfg.string('data-dir') });
  try {
    const applied = await migrate(ch, { mode: cluster ? 'cluster' : 'single', cluster, ttlDays: cfg.number('ttl-days') });
    const where = url ? new URL(url).host : `embedded chDB under ${cfg.string('data-dir')}`;
    process.stdout.write(
      `riptide migrate: ${applied.length ? `applied ${applied.join(', ')}` : 'schema already up to date'} on ${where}${cluster ? ` (cluster ${cluster})` : ''}\n`,
    );
    return 0;
  } finally {
    await ch.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMigrate(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`riptide migrate: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
