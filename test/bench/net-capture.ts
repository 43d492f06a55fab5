/**
 * Cost of network observation points (issue 19), in one run, modes interleaved so drift hits
 * them equally:
 *   baseline  no network programs on the interface
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
    const res: Record<'baseline' | 'net', number[]> = { baseline: [], net: [] };
    const cpu: Record<'baseline' | 'net', number[]> = { baseline: [], net: [] };
    const loadMs: number[] = [];
    let messages = 0;
    for (let r = 0; r < rounds; r++) {
      for (const mode of (r % 2 ? ['net', 'baseline'] : ['baseline', 'net']) as Array<'baseline' | 'net'>) {
        let cap: NetCapture | undefined;
        if (mode === 'net') {
          const t0 = performance.now();
          cap = NetCapture.start({ pattern: parseInterfacePattern(ifS), rescanMs: 0 }, { onMessage: () => messages++, onParsed: () => {}, onSocketClosed: () => {} });
          loadMs.push(performance.now() - t0);
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
    console.log(`network observation points, ${rounds} interleaved rounds of ${trips} round trips (64-byte messages, one TCP connection, across two veth pairs)`);
    console.log(`  baseline: ${med(res.baseline).toFixed(2)} µs/round trip (rounds ${res.baseline.map((x) => x.toFixed(1)).join(' ')}); this process ${med(cpu.baseline).toFixed(0)} ms CPU/round`);
    console.log(`  net:      ${med(res.net).toFixed(2)} µs/round trip (rounds ${res.net.map((x) => x.toFixed(1)).join(' ')}); this process ${med(cpu.net).toFixed(0)} ms CPU/round (drain)`);
    const ratios = res.net.map((x, i) => x / res.baseline[i]);
    console.log(`  net/baseline per round (same round, back to back): ${ratios.map((x) => x.toFixed(2)).join(' ')}; median ${med(ratios).toFixed(2)}; ratio of medians ${(med(res.net) / med(res.baseline)).toFixed(2)}`);
    console.log(`  load + attach to one interface: median ${med(loadMs).toFixed(0)} ms; messages made: ${messages} (first segments only)`);
  } finally {
    server.kill('SIGTERM');
    teardown();
  }
}

await main();
