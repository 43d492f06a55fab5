/**
 * Helper of tls-overhead.ts: the TLS uprobes attached as the agent attaches them, but with the
 * capture filtered to no process (pid 0), so each program returns at once: what the uprobe
 * mechanism itself costs on this machine. Prints 'ready' on stderr; SIGINT detaches and exits.
 */
import { CaptureProgram } from '../../agent/capture/bpf-program.ts';
import { TlsLibraries } from '../../agent/capture/tls-libraries.ts';

// tls: true: TLS capture is opt-in, and the parent runs this with RIPTIDE_TLS=0 (its no-tls mode's env).
const prog = CaptureProgram.load({ filter: { pids: [0] }, ringBytes: 1 << 16, tls: true, log: () => {} });
const libs = new TlsLibraries(prog, process.pid, () => {});
libs.start();
process.stderr.write(`ready: uprobes on ${libs.libraries.size} library files\n`);
const keepAlive = setInterval(() => {}, 1 << 30);
process.once('SIGINT', () => {
  clearInterval(keepAlive);
  libs.close();
  prog.close();
});
