/**
 * Cost of network observation points (issue 19), in one run, modes rotated per round so drift
 * hits them equally:
 *   baseline  no network programs
 *   health    the object loaded as the default (`veth`) loads it on a host where no interface
 *             matches: no TC program anywhere, only the TCP health tracepoints (retransmits,
 *             state changes, and the RTT read at every data syscall of the host)
 *   filtered  attached to the host-side veth end, but for another port (the agent's
 *             --filter-port in the kernel): every packet runs the program, none is copied —
 *             what a test's agent pays for another test's veth traffic
 *   net       bpf/riptide-net.bpf.o attached (tcx ingress + egress) to the host-side veth end,
 *             its ring drained by this process as the agent does (NetCapture: decode, flows)
 *
 * Traffic: a node client in one network namespace ping-pongs 64-byte messages over one TCP
 * connection with a node echo server in another namespace; the two host-side veth ends are
 * routed by the host (addresses on them, no relay): every message crosses both host-side ends,
 * and the bench attaches to one. Reported: µs per round trip (two payload segments and their
 * ACKs through the attached hooks) and this process's CPU ms per round (the drain), plus the
 * time to load the object and attach to one interface.
 *
 *   npx tsx test/bench/net-capture.ts [--rounds 5] [--trips 20000]
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { NetCapture } from '../../agent/capture/net-capture.ts';
import { parseInterfacePattern } from '../../agent/capture/net-interfaces.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, trips: { type: 'string', default: '20000' } } });
const rounds = Number(values.rounds);
const trips = Number(values.trips);

const tag = randomBytes(2).toString('hex');
const nsS = `rt19bs${tag}`;
const nsC = `rt19bc${tag}`;
const ifS = `rt19b${tag}s`;
const ifC = `rt19b${tag}c`;
const sh = (args: string[]): void => void execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
const port = 20_000 + Math.floor(Math.random() * 20_000);

function setup(): void {
  const net = 200 + (randomBytes(1)[0] % 50);
  const [a, b] = [randomBytes(1)[0] % 250, randomBytes(1)[0] % 250];
  for (const [ns, hostIf, sub] of [[nsS, ifS, a], [nsC, ifC, b]] as const) {
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', `${hostIf}p`]);
    sh(['ip', 'link', 'set', `${hostIf}p`, 'netns', ns]);
    sh(['ip', 'addr', 'add', `10.${net}.${sub}.1/24`, 'dev', hostIf]);
    sh(['ip', 'link', 'set', hostIf, 'up']);
    sh(['ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `10.${net}.${sub}.2/24`, 'dev', `${hostIf}p`]);
    sh(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', `${hostIf}p`, 'up']);
    sh(['ip', 'netns', 'exec', ns, 'ip', 'route', 'add', 'default', 'via', `10.${net}.${sub}.1`]);
  }
  // Forwarding only between these two /24s: the namespaces have nowhere else to go.
  sh(['sysctl', '-q', '-w', `net.ipv4.conf.${ifS}.forwarding=1`]);
  sh(['sysctl', '-q', '-w', `net.ipv4.conf.${ifC}.forwarding=1`]);
  serverIp = `10.${net}.${a}.2`;
}
let serverIp = '';

function teardown(): void {
  for (const args of [['ip', 'link', 'del', ifS], ['ip', 'link', 'del', ifC], ['ip', 'netns', 'del', nsS], ['ip', 'netns', 'del', nsC]]) {
    try {
      sh(args);
    } catch {
      /* gone */
    }
  }
}

const ECHO = `require('net').createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); }).listen(${port}, '0.0.0.0', () => console.log('ready'));`;
const CLIENT = (n: number): string => `
const s = require('net').connect(${port}, '${serverIp}', () => {
  s.setNoDelay(true);
  const msg = Buffer.alloc(64, 97); let left = ${n}, got = 0; const t0 = process.hrtime.bigint();
  s.on('data', (d) => { got += d.length; while (got >= 64) { got -= 64; if (--left === 0) { console.log(Number(process.hrtime.bigint() - t0) / 1e3 / ${n}); s.end(); return; } s.write(msg); } });
  s.write(msg);
});`;

async function roundTrip(n: number): Promise<number> {
  const out = execFileSync('ip', ['netns', 'exec', nsC, process.execPath, '-e', CLIENT(n)], { encoding: 'utf8', timeout: 120_000 });
  return Number(out.trim());
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (namespaces, BPF)');
  setup();
  const server = spawn('ip', ['netns', 'exec', nsS, process.execPath, '-e', ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((r) => server.stdout!.once('data', () => r()));
    await roundTrip(2000); // warm-up
    const MODES = ['baseline', 'health', 'filtered', 'net'] as const;
    type Mode = (typeof MODES)[number];
    const res: Record<Mode, number[]> = { baseline: [], health: [], filtered: [], net: [] };
    const cpu: Record<Mode, number[]> = { baseline: [], health: [], filtered: [], net: [] };
    const loadMs: Record<Mode, number[]> = { baseline: [], health: [], filtered: [], net: [] };
    let messages = 0;
    let filteredMessages = 0;
    for (let r = 0; r < rounds; r++) {
      for (const mode of MODES.map((_, i) => MODES[(i + r) % MODES.length])) {
        let cap: NetCapture | undefined;
        if (mode !== 'baseline') {
          const t0 = performance.now();
          // health: the default pattern with no veth on the host (a name that matches nothing stands in)
          const pattern = parseInterfacePattern(mode === 'health' ? `rt19none${tag}` : ifS);
          const ports = mode === 'filtered' ? [port + 1] : undefined;
          cap = NetCapture.start({ pattern, rescanMs: 0, ports }, { onMessage: () => (mode === 'net' ? messages++ : filteredMessages++), onParsed: () => {}, onSocketClosed: () => {} });
          loadMs[mode].push(performance.now() - t0);
        }
        const c0 = process.cpuUsage();
        // the client runs in a child; this loop stays free to drain (as the agent's would)
        const us = await new Promise<number>((resolve, reject) => {
          const child = spawn('ip', ['netns', 'exec', nsC, process.execPath, '-e', CLIENT(trips)], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          child.once('exit', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`client exited ${code}`))));
        });
        const c = process.cpuUsage(c0);
        cap?.stop();
        res[mode].push(us);
        cpu[mode].push((c.user + c.system) / 1000);
      }
    }
    const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    console.log(`network observation points, ${rounds} rotated rounds of ${trips} round trips (64-byte messages, one TCP connection, across two veth pairs)`);
    for (const mode of MODES) {
      console.log(`  ${(mode + ':').padEnd(10)} ${med(res[mode]).toFixed(2)} µs/round trip (rounds ${res[mode].map((x) => x.toFixed(1)).join(' ')}); this process ${med(cpu[mode]).toFixed(0)} ms CPU/round${mode === 'baseline' ? '' : `; load${mode === 'health' ? '' : ' + attach'} median ${med(loadMs[mode]).toFixed(0)} ms`}`);
    }
    for (const mode of MODES.slice(1)) {
      const ratios = res[mode].map((x, i) => x / res.baseline[i]);
      console.log(`  ${mode}/baseline per round (same round): ${ratios.map((x) => x.toFixed(2)).join(' ')}; median ${med(ratios).toFixed(2)}; ratio of medians ${(med(res[mode]) / med(res.baseline)).toFixed(2)}`);
    }
    console.log(`  messages made: net ${messages} (first segments only); health + filtered ${filteredMessages} (want 0: nothing copied)`);
  } finally {
    server.kill('SIGTERM');
    teardown();
  }
}

await main();
