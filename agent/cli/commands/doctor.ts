import type { Command } from '../command.ts';
import { ExitCode, UsageError } from '../command.ts';
import { loadConfig, renderHelp } from '../config.ts';
import { probeFeatures, runPreflight } from '../../capture/preflight.ts';
import { probeTlsCapture } from '../../capture/tls-libraries.ts';
import { probeNetCapture } from '../../capture/net-capture.ts';
import { DEFAULT_NET_INTERFACES, parseInterfacePattern } from '../../capture/net-interfaces.ts';

const command: Command = {
  name: 'doctor',
  summary: 'Check this host for the agent',
  help: renderHelp(
    'riptide doctor',
    'Checks what the capture agent needs (privileges, kernel BTF, tracefs, libbpf, BPF tracepoints),\nthen probes the optional hook kinds (raw tracepoints, kprobes, fentry, perf-event, TC, socket filters),\nwhether network capture works here (agent --net-interfaces, default veth: the network object loads,\nTC attaches to lo for a moment with a filter that copies nothing; which interfaces the default matches)\nand whether TLS plaintext capture works here (uprobes attach; which TLS libraries were found).\nExits 3 (not permitted) when the agent cannot run here.',
    [],
  ),
  async run(argv) {
    const cfg = loadConfig(argv, []);
    if (cfg.positionals.length) throw new UsageError(`unexpected argument "${cfg.positionals[0]}"`);
    const pre = runPreflight();
    for (const c of pre.checks) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.line}\n`);
    if (!pre.ok) {
      process.stderr.write(`riptide doctor: the agent cannot run here: ${pre.problem}\n`);
      return ExitCode.denied;
    }
    process.stdout.write('\nOptional hooks (the agent needs none of them; syscall tracepoints are the baseline):\n');
    for (const f of probeFeatures()) process.stdout.write(`${f.available ? 'yes ' : 'no  '}  ${f.name}: ${f.detail}\n`);
    process.stdout.write(`\nNetwork spans and TCP health (agent --net-interfaces, default ${DEFAULT_NET_INTERFACES}: host-side veth ends; physical NICs only when named; "none" for off):\n`);
    const net = probeNetCapture(parseInterfacePattern(DEFAULT_NET_INTERFACES));
    if (net.loadError) process.stdout.write(`no    network object: ${net.loadError} (the agent runs without network spans and TCP health)\n`);
    else {
      process.stdout.write(`yes   network object: loads (${net.loadMs.toFixed(0)} ms with its tracepoints)\n`);
      process.stdout.write(`${net.tcpHealth ? 'yes ' : 'no  '}  TCP health: tcp:tcp_retransmit_skb, sock:inet_sock_set_state; RTT read at data syscalls by the capture program\n`);
      const tc = net.tc;
      process.stdout.write(tc?.ok ? `yes   TC attach: ${tc.mode} (tried on lo, detached)\n` : `no    TC attach: ${tc?.reason ?? 'not tried'} (the agent runs without network spans, says so in one line)\n`);
    }
    process.stdout.write(`      default "${DEFAULT_NET_INTERFACES}" matches now: ${net.defaultMatches.length ? net.defaultMatches.join(', ') : 'no interface (attached when one appears; rescanned every 3 s)'}\n`);
    process.stdout.write('\nTLS plaintext (uprobes on OpenSSL-compatible SSL_read/SSL_write and Go crypto/tls Conn.Read/Write, with agent --tls; without them TLS stays ciphertext):\n');
    const tls = await probeTlsCapture();
    process.stdout.write(`${tls.ok ? 'yes ' : 'no  '}  uprobes: ${tls.detail}\n`);
    for (const l of tls.libraries) process.stdout.write(`      ${l.path}: ${l.symbols.join(' ')} (${l.processes} process${l.processes === 1 ? '' : 'es'} now)\n`);
    return 0;
  },
};

export default command;
