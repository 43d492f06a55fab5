/**
 * Helper of go-tls-overhead.ts: the Go crypto/tls uprobes attached to one executable as the agent
 * attaches them, with the capture filtered to no process (pid 0) so each program returns at once:
 * what the uprobe mechanism itself costs. `first-byte` puts the entry probe on the function's
 * first byte (an instruction the kernel single-steps) instead of the stack check's branch (which
 * it emulates). Prints 'ready' on stderr; SIGINT detaches and exits.
 *
 *   npx tsx test/bench/go-tls-probe-only.ts EXE [branch|first-byte]
 */
import { readFileSync } from 'node:fs';
import { CaptureProgram } from '../../agent/capture/bpf-program.ts';
import { GO_TLS_FUNCTIONS, GO_TLS_RETURN_PROGRAM, elfFunctions, goTlsProbePoints } from '../../agent/capture/go-tls.ts';

const [exe, where = 'branch'] = process.argv.slice(2);
const prog = CaptureProgram.load({ filter: { pids: [0] }, ringBytes: 1 << 16, tls: true, log: () => {} });
const b = readFileSync(exe);
const links: bigint[] = [];
for (const p of goTlsProbePoints(b)) {
  const f = GO_TLS_FUNCTIONS.find((x) => x.symbol === p.symbol)!;
  const entry = where === 'first-byte' ? elfFunctions(b, new Set([p.symbol]))[0].offset : p.entry;
  links.push(prog.attachUprobe(f.enter, exe, entry));
  for (const r of p.returns) links.push(prog.attachUprobe(GO_TLS_RETURN_PROGRAM, exe, r));
}
process.stderr.write(`ready: ${links.length} uprobes on ${exe} (entry: ${where})\n`);
const keepAlive = setInterval(() => {}, 1 << 30);
process.once('SIGINT', () => {
  clearInterval(keepAlive);
  for (const l of links) prog.detach(l);
  prog.close();
});
