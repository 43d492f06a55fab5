/**
 * Benchmark helper: loads and attaches the capture program and drains the ring without decoding,
 * so a run measures the kernel-side cost alone. Prints "ready" on stderr once attached, and the
 * number of records drained on exit (SIGINT), with the hand-off counters when RIPTIDE_BPF_HANDOFF=1.
 *   npx tsx test/bench/bpf-only.ts PORT
 * RIPTIDE_BENCH_GO_PID=<pid>: also read that Go process's goroutine ids (test/bench/goroutine-read.ts).
 */
import { readFileSync } from 'node:fs';
import { CaptureProgram } from '../../agent/capture/bpf-program.ts';
import { inspectGoBinary } from '../../agent/capture/go-runtime.ts';

const port = Number(process.argv[2]);
const prog = CaptureProgram.load({ filter: { ports: [port] }, objectPath: process.env.RIPTIDE_BPF_OBJECT });
const goPid = Number(process.env.RIPTIDE_BENCH_GO_PID ?? 0);
if (goPid) prog.setGoProcess(goPid, inspectGoBinary(readFileSync(`/proc/${goPid}/exe`)));
const reader = prog.ringReader();
let records = 0;
const noop = (): void => {};
const timer = setInterval(() => {
  records += reader.drain(noop);
}, 10);
process.stderr.write('ready\n');
process.once('SIGINT', () => {
  clearInterval(timer);
  records += reader.drain(noop);
  const k = prog.counters();
  reader.close();
  prog.close();
  process.stdout.write(JSON.stringify({ records, kernelDropped: k.ringbufFull, ...(prog.handoff ? { handoff: k.handoff } : {}) }) + '\n');
  process.exit(0);
});
