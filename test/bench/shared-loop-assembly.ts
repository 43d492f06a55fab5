/**
 * Parent linking on an asyncio-shaped event loop: the previous assemble.ts (baseline, read from git)
 * and the current one, on the same generated span sets, in one run.
 *
 *   npx tsx test/bench/shared-loop-assembly.ts                      # baseline = 1bda8cd (before the shared-loop rule)
 *   npx tsx test/bench/shared-loop-assembly.ts --base REV --open 100 --sets 200 --batch 0.2
 *   npx tsx test/bench/shared-loop-assembly.ts --bare     # calls carry nothing of their request
 *
 * Each set is what assembly holds for one busy window of a gateway thread: `--open` requests served
 * at once on one thread (pid 20, tid 20), each a server span with three calls (Redis GET item:<n>,
 * /down/<n>/a, /down/<n>/b) and the downstream server span of each call (10 spans with nginx's pair).
 * Syscall ids follow asyncio's selector loop: a response is written with the id of the last reply
 * read; with probability `--batch` that read was another open request's reply (read in the same
 * select() batch). Prints, for both versions: ms per linkParents call (median, p95 over `--sets`),
 * spans/s, and right / unattached / wrong links of the gateway's calls against the generator's truth.
 */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AsmSpan } from '../../functions/query/span.ts';
import * as ours from '../../functions/query/assemble.ts';
import { REPO } from '../helpers/agent.ts';

const args = process.argv.slice(2);
const flag = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const BASE = args.includes('--base') ? args[args.indexOf('--base') + 1] : '1bda8cd';
const OPEN = flag('open', 100);
const SETS = flag('sets', 200);
const BATCH = flag('batch', 0.2);
/** --bare: the calls' resources hold no id of the request (`content` has nothing to go on). */
const BARE = args.includes('--bare');

let rnd = 12345;
const random = (): number => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

let n = 0;
function span(p: Partial<AsmSpan>): AsmSpan {
  n++;
  return {
    trace_id: '', app_span_id: '', app_parent_span_id: '', signal_source: 'ebpf', agent_id: 'h1',
    start_time_us: 0, end_time_us: 0, side: 'client', l7_protocol: 'http1', l4_protocol: 'tcp', request_id: -1,
    pid: 0, tid: 0, resp_tid: 0, client_port: 0, server_port: 0, req_tcp_seq: 0, resp_tcp_seq: 0,
    syscall_trace_id_req: 0, syscall_trace_id_resp: 0, x_request_id_req: '', x_request_id_resp: '', host_id: 0, process_id: 0,
    ...p,
    span_id: n.toString(16).padStart(16, '0'),
  };
}

/** One busy window: spans, and the true parent of each gateway call. */
function window(first: number): { spans: AsmSpan[]; truth: Map<string, string> } {
  const spans: AsmSpan[] = [];
  const truth = new Map<string, string>();
  let id = first * 100;
  let seq = first * 1000;
  const calls: Array<{ server: AsmSpan; last: AsmSpan[] }> = [];
  for (let k = 0; k < OPEN; k++) {
    const r = first + k;
    const t0 = k * 37;
    const srv = span({ side: 'server', pid: 20, tid: 20, resp_tid: 20, start_time_us: t0, end_time_us: t0 + 5000, request_resource: `/seq/${r}`, syscall_trace_id_req: ++id, req_tcp_seq: ++seq, resp_tcp_seq: ++seq, server_port: 8080 });
    const up = span({ side: 'client', pid: 10, tid: 10, resp_tid: 10, start_time_us: t0 - 5, end_time_us: t0 + 5005, request_resource: `/seq/${r}`, req_tcp_seq: srv.req_tcp_seq, resp_tcp_seq: srv.resp_tcp_seq, server_port: 8080, syscall_trace_id_req: ++id, syscall_trace_id_resp: ++id });
    spans.push(srv, up);
    const mine: AsmSpan[] = [];
    for (const [j, [proto, res, port]] of ([['redis', BARE ? 'GET item' : `GET item:${r}`, 6379], ['http1', BARE ? '/down/a' : `/down/${r}/a`, 9000], ['http1', BARE ? '/down/b' : `/down/${r}/b`, 9000]] as const).entries()) {
      const s = t0 + 100 + j * 1500;
      const c = span({ side: 'client', pid: 20, tid: 20, resp_tid: 20, l7_protocol: proto, start_time_us: s, end_time_us: s + 1200, request_resource: res, syscall_trace_id_req: ++id, syscall_trace_id_resp: ++id, req_tcp_seq: ++seq, resp_tcp_seq: ++seq, server_port: port });
      const d = span({ side: 'server', pid: 30 + j, tid: 31 + k, resp_tid: 31 + k, l7_protocol: proto, start_time_us: s + 5, end_time_us: s + 1195, request_resource: res, syscall_trace_id_req: ++id, syscall_trace_id_resp: id, req_tcp_seq: c.req_tcp_seq, resp_tcp_seq: c.resp_tcp_seq, server_port: port });
      spans.push(c, d);
      truth.set(c.span_id, srv.span_id);
      mine.push(c);
    }
    calls.push({ server: srv, last: mine });
  }
  // The response goes out with the id of the last reply read: its own last call's, or (a batch)
  // another open request's call's.
  for (const [k, { server, last }] of calls.entries()) {
    const other = calls[(k + 1 + Math.floor(random() * (OPEN - 1))) % OPEN];
    const from = OPEN > 1 && random() < BATCH ? other.last[Math.floor(random() * 3)] : last[2];
    server.syscall_trace_id_resp = from.syscall_trace_id_resp;
  }
  return { spans, truth };
}

type Linker = (spans: readonly AsmSpan[]) => Map<string, { parent: string }>;

function measure(link: Linker, sets: ReturnType<typeof window>[]): { ms: number[]; right: number; unattached: number; wrong: number } {
  const ms: number[] = [];
  let right = 0;
  let unattached = 0;
  let wrong = 0;
  for (const { spans, truth } of sets) {
    const t = process.hrtime.bigint();
    const l = link(spans);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
    for (const [c, p] of truth) {
      const got = l.get(c)?.parent;
      if (!got) unattached++;
      else if (got === p) right++;
      else wrong++;
    }
  }
  return { ms, right, unattached, wrong };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function main(): Promise<void> {
  const file = join(REPO, 'functions', 'query', `.assemble-baseline-${process.pid}.ts`);
  writeFileSync(file, execFileSync('git', ['-C', REPO, 'show', `${BASE}:functions/query/assemble.ts`], { encoding: 'utf8' }));
  try {
    const base = (await import(file)) as typeof ours;
    const sets = Array.from({ length: SETS }, (_, i) => window(1000 + i * OPEN));
    const spans = sets[0].spans.length;
    // Warm both up (JIT), then alternate so that neither gets a warmer machine.
    measure((s) => base.linkParents(s), sets.slice(0, 20));
    measure((s) => ours.linkParents(s), sets.slice(0, 20));
    const runs: Record<'baseline' | 'ours', ReturnType<typeof measure>[]> = { baseline: [], ours: [] };
    for (let r = 0; r < 3; r++) {
      runs.baseline.push(measure((s) => base.linkParents(s), sets));
      runs.ours.push(measure((s) => ours.linkParents(s), sets));
    }
    console.log(`linkParents on ${SETS} sets of ${spans} spans (${OPEN} requests open on one asyncio thread, batch ${BATCH}${BARE ? ', calls without ids' : ''}), baseline ${BASE} vs working tree, 3 alternating rounds:`);
    for (const [name, rs] of Object.entries(runs)) {
      const ms = rs.flatMap((x) => x.ms);
      const { right, unattached, wrong } = rs[0];
      const total = right + unattached + wrong;
      console.log(
        `  ${name.padEnd(8)} median ${pct(ms, 50).toFixed(3)} ms, p95 ${pct(ms, 95).toFixed(3)} ms per set (${Math.round((spans * 1000) / pct(ms, 50)).toLocaleString('en')} spans/s); ` +
          `gateway calls: ${right} right, ${unattached} unattached, ${wrong} wrong (${((100 * wrong) / total).toFixed(2)}%) of ${total}`,
      );
    }
  } finally {
    rmSync(file, { force: true });
  }
}

await main();
