/**
 * "Does ClickHouse answer?" for readiness (`GET /readyz`): a `SELECT 1` with a deadline, remembered
 * for a moment so a probe every second does not queue behind a long insert on embedded chDB.
 *
 * @example
 *   const ping = clickhousePing(ch);
 *   const problem = await ping();   // null, or 'ClickHouse does not answer: …'
 */
import type { ClickHouse } from './clickhouse.ts';
import { queryRows } from './clickhouse.ts';

export function clickhousePing(ch: ClickHouse, o: { timeoutMs?: number; cacheMs?: number } = {}): () => Promise<string | null> {
  const timeoutMs = o.timeoutMs ?? 2000;
  const cacheMs = o.cacheMs ?? 1000;
  let last: { at: number; problem: string | null } | undefined;
  let inflight: Promise<string | null> | undefined;
  return () => {
    if (last && Date.now() - last.at < cacheMs) return Promise.resolve(last.problem);
    inflight ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<string>((res) => {
        timer = setTimeout(() => res(`ClickHouse does not answer within ${timeoutMs} ms`), timeoutMs);
      });
      const answer = queryRows<{ ok: number }>(ch, 'SELECT 1 AS ok').then(
        (rows) => (rows[0]?.ok === 1 ? null : 'ClickHouse answered SELECT 1 with nothing'),
        (err: unknown) => `ClickHouse does not answer: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`,
      );
      try {
        const problem = await Promise.race([answer, deadline]);
        last = { at: Date.now(), problem };
        return problem;
      } finally {
        clearTimeout(timer);
        inflight = undefined;
      }
    })();
    return inflight;
  };
}
