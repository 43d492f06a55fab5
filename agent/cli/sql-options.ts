/**
 * The `--sql-*` flags of `riptide query` and `riptide up`: limits of `POST /api/v1/sql`
 * (functions/query/sql-guard.ts). Unset flags keep the defaults there.
 *
 * @example
 *   const cfg = loadConfig(argv, [...commonOptions, ...sqlOptions]);
 *   createQueryApp({ clickhouse, sql: sqlRunnerOptions(cfg) });
 */
import { UsageError } from './command.ts';
import type { Config, OptionSpec } from './config.ts';
import type { SqlRouteLimits, SqlRunnerOptions } from '../../functions/query/sql-guard.ts';

export const sqlOptions: OptionSpec[] = [
  { name: 'sql-timeout', type: 'number', help: 'POST /api/v1/sql: seconds a statement may run (default 30)' },
  { name: 'sql-max-memory-mb', type: 'number', help: 'POST /api/v1/sql: memory of one statement, MiB (default 1024)' },
  { name: 'sql-max-rows', type: 'number', help: 'POST /api/v1/sql: rows answered at most, more is "truncated" (default 10000)' },
  { name: 'sql-max-result-mb', type: 'number', help: 'POST /api/v1/sql: size of an answer, MiB (default 64)' },
  { name: 'sql-threads', type: 'number', help: 'POST /api/v1/sql: threads of one statement (default half the cores)' },
];

export function sqlRunnerOptions(cfg: Config): SqlRunnerOptions {
  const limits: Partial<SqlRouteLimits> = {};
  const positive = (flag: string, set: (n: number) => void, scale = 1): void => {
    const n = cfg.number(flag);
    if (n === undefined) return;
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${flag} must be a positive number, got ${cfg.string(flag)}`);
    set(n * scale);
  };
  positive('sql-timeout', (n) => (limits.timeoutSeconds = n));
  positive('sql-max-memory-mb', (n) => (limits.maxMemoryBytes = n), 1024 ** 2);
  positive('sql-max-rows', (n) => (limits.maxRows = Math.trunc(n)));
  positive('sql-max-result-mb', (n) => (limits.maxResultBytes = n), 1024 ** 2);
  positive('sql-threads', (n) => (limits.maxThreads = Math.trunc(n)));
  return { limits };
}
