/**
 * Helpers for the body-limit and bad-input tests: a chunked upload that stops as soon as the server
 * answers (how a 413 while streaming is seen from outside), and a fuzz of query-string parsers.
 */
import { request } from 'node:http';

export interface StreamedPost {
  status: number;
  body: string;
  /** Body bytes written before the response arrived (or all of them, if it came after). */
  sentBytes: number;
  /** Highest RSS seen while sending, minus the RSS before (this process: client and server both). */
  peakRssGrowth: number;
}

/**
 * POST `totalBytes` of `fill` with `Transfer-Encoding: chunked` (no Content-Length), 64 KiB a
 * write, and stop writing the moment the response arrives.
 */
export async function postChunked(url: string, o: { totalBytes: number; headers?: Record<string, string>; prefix?: string; fill?: number; timeoutMs?: number }): Promise<StreamedPost> {
  const chunk = Buffer.alloc(64 << 10, o.fill ?? 0x20);
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  try {
    return await new Promise<StreamedPost>((resolve, reject) => {
      let sent = 0;
      let answered = false;
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error(`no response within ${o.timeoutMs ?? 60_000} ms (sent ${sent} bytes)`));
      }, o.timeoutMs ?? 60_000);
      const req = request(url, { method: 'POST', headers: { ...o.headers, 'transfer-encoding': 'chunked' } }, (res) => {
        answered = true;
        const at = sent;
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          clearTimeout(timer);
          peak = Math.max(peak, process.memoryUsage().rss);
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8'), sentBytes: at, peakRssGrowth: peak - rss0 });
        });
        res.on('error', reject);
      });
      // The server may close the connection after answering: an error then is expected.
      req.on('error', (err) => {
        if (!answered) {
          clearTimeout(timer);
          reject(err);
        }
      });
      const pump = (): void => {
        if (o.prefix && sent === 0) {
          req.write(o.prefix);
          sent += Buffer.byteLength(o.prefix);
        }
        while (!answered && sent < o.totalBytes) {
          const ok = req.write(chunk);
          sent += chunk.length;
          if (!ok) {
            req.once('drain', pump);
            return;
          }
        }
        if (!answered) req.end();
      };
      pump();
    });
  } finally {
    clearInterval(sampler);
  }
}

/** Values no parser of a number, a time, a duration, an id or a name should answer with a 5xx. */
export const ABSURD_VALUES: readonly string[] = [
  '0', '-1', '1.5', '1e11', '1e16', '1e17', '1e30', '1e300', '1e400', '-1e300', '1e-400', 'NaN', 'Infinity', '-Infinity',
  '0x10', '9'.repeat(40), '18446744073709551615', '-9223372036854775809', '00000000000000000001', '', ' ', 'null', 'true',
  '[]', '{}', '[1]', '"x"', '{"error":"1e30"}', '{"http.status_code":"1e30"}', '{"span.kind":null}', '%00', "' OR 1=1 --", '{x:String}',
  'x'.repeat(4000), '\u00e9\u{1F600}', '99999999999999h', '1e300ms', '1.5s', 'custom', '-5m',
];

/** Every `route?param=value` pair to try, `base` params added (e.g. a required service). */
export function fuzzUrls(routes: ReadonlyArray<{ path: string; params: readonly string[]; base?: Record<string, string> }>, values = ABSURD_VALUES): string[] {
  const out: string[] = [];
  for (const r of routes) {
    const base = new URLSearchParams(r.base ?? {});
    for (const v of values) {
      if (r.path.includes('{}')) out.push(r.path.replace('{}', encodeURIComponent(v) || '%20') + (r.base ? `?${base}` : ''));
      for (const p of r.params) {
        const q = new URLSearchParams(base);
        q.set(p, v);
        out.push(`${r.path}?${q}`);
      }
      // The time pairs together: both absurd, and a sane start with an absurd end.
      if (r.params.includes('start') && r.params.includes('end')) {
        for (const [s, e] of [[v, v], ['0', v], [v, '0']]) {
          const q = new URLSearchParams(base);
          q.set('start', s);
          q.set('end', e);
          out.push(`${r.path}?${q}`);
        }
      }
    }
  }
  return out;
}

/**
 * Run each URL through `get`; return the ones answered with a 5xx, or a 4xx without an error
 * message, as "status url: body" lines (empty when all is well).
 */
export async function fuzzNo5xx(urls: readonly string[], get: (url: string) => Promise<Response>): Promise<string[]> {
  const bad: string[] = [];
  for (const u of urls) {
    const res = await get(u);
    const text = await res.text();
    if (res.status >= 500) bad.push(`${res.status} ${u.slice(0, 200)}: ${text.slice(0, 200)}`);
    else if (res.status >= 400 && !/"(error|msg)"\s*:\s*"[^"]+/.test(text)) bad.push(`${res.status} without a reason ${u.slice(0, 200)}: ${text.slice(0, 200)}`);
  }
  return bad;
}
