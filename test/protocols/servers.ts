/**
 * Real servers for the protocol fixtures and end-to-end tests, each on a free loopback port in a
 * temporary directory, stopped by `stop()`. Debian packages: see test/system-packages.txt.
 * Database servers run as their own users (postgres, mysql), so these need root.
 */

import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './recorder.ts';

export interface RunningServer {
  port: number;
  dir: string;
  stop(): Promise<void>;
}

function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `riptide-${prefix}-`));
}

function userIds(name: string): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, name]).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Children still running: killed if this process exits without stopping them. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function launch(cmd: string, args: string[], opts: { uid?: number; gid?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  live.add(c);
  c.on('exit', () => live.delete(c));
  let err = '';
  c.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  c.on('exit', (code) => {
    if (code && !c.killed) process.stderr.write(`${cmd} exited ${code}: ${err}\n`);
  });
  return c;
}

async function stopChild(c: ChildProcess, dir: string): Promise<void> {
  if (c.exitCode === null && c.signalCode === null) {
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Clients run asynchronously: servers or proxies under test may live in this process. */
export function runAsync(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30000, ...opts }, (err, stdout) => (err ? reject(err) : resolve(String(stdout))));
  });
}

export async function startNginx(): Promise<RunningServer> {
  const dir = tmp('nginx');
  const port = await freePort();
  fs.mkdirSync(path.join(dir, 'static'));
  fs.writeFileSync(path.join(dir, 'static', 'big.txt'), 'riptide '.repeat(600));
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location = / { return 200 "hello\\n"; }
    location = /fail { return 503 "down\\n"; }
    location /static/ { alias ${dir}/static/; }
    location /api/ { return 201 "created\\n"; }
  }
}
`,
  );
  const c = launch('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir]);
  await waitForPort(port);
  return { port, dir, stop: () => stopChild(c, dir) };
}

/**
 * nginx serving HTTPS (TLS 1.2 and 1.3, ALPN h2 and http/1.1) with a self-signed certificate made
 * here by the openssl CLI for `*.riptide.test`; `cert` is its path (for a client that trusts it).
 */
export async function startTlsNginx(): Promise<RunningServer & { cert: string }> {
  const dir = tmp('nginx-tls');
  const port = await freePort();
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=shop.riptide.test', '-addext', 'subjectAltName=DNS:shop.riptide.test,DNS:*.riptide.test'], { stdio: 'ignore' });
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location = / { return 200 "hello\\n"; }
    location /api/ { return 201 "created\\n"; }
  }
}
`,
  );
  const c = launch('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir]);
  await waitForPort(port);
  return { port, dir, cert, stop: () => stopChild(c, dir) };
}

export async function startRedis(): Promise<RunningServer> {
  const dir = tmp('redis');
  const port = await freePort();
  const c = launch('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]);
  await waitForPort(port);
  return { port, dir, stop: () => stopChild(c, dir) };
}

export async function startMemcached(): Promise<RunningServer> {
  const dir = tmp('memcached');
  const port = await freePort();
  const c = launch('memcached', ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-u', 'nobody', '-m', '16']);
  await waitForPort(port);
  return { port, dir, stop: () => stopChild(c, dir) };
}

export async function startNats(): Promise<RunningServer> {
  const dir = tmp('nats');
  const port = await freePort();
  const c = launch('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-m', '0']);
  await waitForPort(port);
  return { port, dir, stop: () => stopChild(c, dir) };
}

export async function startDnsmasq(): Promise<RunningServer> {
  const dir = tmp('dnsmasq');
  const port = await freePort();
  const c = launch('dnsmasq', ['-k', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', `--pid-file=${dir}/dnsmasq.pid`, '--local=/riptide.test/', '--address=/svc.riptide.test/10.0.0.7', '--host-record=db.riptide.test,10.0.0.8,fd00::8', '--txt-record=txt.riptide.test,"v=riptide1"', '--user=root']);
  await waitForPort(port);
  return { port, dir, stop: () => stopChild(c, dir) };
}

export async function startMosquitto(): Promise<RunningServer> {
  const dir = tmp('mosquitto');
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'm.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  const c = launch('mosquitto', ['-c', path.join(dir, 'm.conf')]);
  await waitForPort(port);
  return { port, dir, stop: () => stopChild(c, dir) };
}

/** A PostgreSQL server binary: on PATH if linked there, else Debian's versioned folder (newest). */
function pgBin(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && fs.existsSync(path.join(dir, name))) return name;
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (fs.existsSync(path.join(root, v, 'bin', name))) return path.join(root, v, 'bin', name);
  return name;
}

/** A private PostgreSQL cluster (initdb -A trust) started as the postgres user. */
export async function startPostgres(): Promise<RunningServer> {
  const dir = tmp('pg');
  const pg = userIds('postgres');
  fs.chownSync(dir, pg.uid, pg.gid);
  const data = path.join(dir, 'data');
  execFileSync(pgBin('initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'], { ...pg, cwd: dir, stdio: 'ignore' });
  const port = await freePort();
  const c = launch(pgBin('postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'], { ...pg, cwd: dir });
  await waitForPort(port);
  await new Promise((r) => setTimeout(r, 300));
  return { port, dir, stop: () => stopChild(c, dir) };
}

/**
 * A private MariaDB (mariadb-install-db into a temp dir, --skip-grant-tables) run as the mysql user.
 * `grants: true` keeps the grant tables (root with an empty password; a wrong one is refused);
 * `maxConnections` caps connections (MariaDB lets one more in for a SUPER user such as root).
 */
export async function startMariadb(opts: { grants?: boolean; maxConnections?: number } = {}): Promise<RunningServer> {
  const dir = tmp('mariadb');
  const my = userIds('mysql');
  fs.chownSync(dir, my.uid, my.gid);
  const data = path.join(dir, 'data');
  execFileSync('mariadb-install-db', [`--datadir=${data}`, '--user=mysql', '--auth-root-authentication-method=normal', '--skip-test-db'], { cwd: dir, stdio: 'ignore' });
  const port = await freePort();
  const c = launch('mariadbd', [`--datadir=${data}`, `--port=${port}`, `--socket=${dir}/mysqld.sock`, '--bind-address=127.0.0.1', '--user=mysql', ...(opts.grants ? [] : ['--skip-grant-tables']), ...(opts.maxConnections ? [`--max-connections=${opts.maxConnections}`] : []), '--skip-log-bin', `--pid-file=${dir}/mysqld.pid`, '--innodb-buffer-pool-size=16M'], { cwd: dir });
  await waitForPort(port, 60000);
  return { port, dir, stop: () => stopChild(c, dir) };
}

/**
 * A private RabbitMQ node (AMQP 0-9-1) as the rabbitmq user: its own node name, Mnesia and log
 * folders, its own epmd on a free port (stopped with the node), guest/guest allowed from loopback.
 * RUNNING_UNDER_SYSTEMD makes the start script exec the Erlang VM, so SIGTERM stops the node.
 */
export async function startRabbitmq(): Promise<RunningServer> {
  const dir = tmp('rabbitmq');
  const rq = userIds('rabbitmq');
  const [port, dist, epmd] = [await freePort(), await freePort(), await freePort()];
  fs.writeFileSync(path.join(dir, 'rabbitmq.conf'), `listeners.tcp.default = 127.0.0.1:${port}\nloopback_users = none\n`);
  fs.writeFileSync(path.join(dir, 'enabled_plugins'), '[].\n');
  execFileSync('chown', ['-R', `${rq.uid}:${rq.gid}`, dir]);
  const env = {
    PATH: process.env.PATH, HOME: dir, RUNNING_UNDER_SYSTEMD: '1', RABBITMQ_NODENAME: `riptide${port}@localhost`,
    RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq.conf'), RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'), RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'), RABBITMQ_DIST_PORT: String(dist), RABBITMQ_PID_FILE: path.join(dir, 'pid'),
    ERL_EPMD_ADDRESS: '127.0.0.1', ERL_EPMD_PORT: String(epmd),
  };
  const c = launch('/usr/lib/rabbitmq/bin/rabbitmq-server', [], { ...rq, cwd: dir, env });
  await waitForPort(port, 90_000);
  return {
    port,
    dir,
    async stop() {
      await stopChild(c, dir);
      await runAsync('epmd', ['-port', String(epmd), '-kill']).catch(() => undefined);
    },
  };
}

/** A standalone ZooKeeper (Debian zookeeper: ZooKeeperServerMain) with its data in a temp dir. */
export async function startZookeeper(): Promise<RunningServer> {
  const dir = tmp('zookeeper');
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'zoo.cfg'), `tickTime=2000\ndataDir=${dir}/data\nclientPort=${port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n`);
  const c = launch('java', ['-Xmx128m', `-Dzookeeper.log.dir=${dir}`, '-Dzookeeper.root.logger=WARN,CONSOLE', '-cp', '/etc/zookeeper/conf:/usr/share/java/zookeeper.jar', 'org.apache.zookeeper.server.ZooKeeperServerMain', path.join(dir, 'zoo.cfg')], { cwd: dir });
  await waitForPort(port, 60_000);
  return { port, dir, stop: () => stopChild(c, dir) };
}

/** ZooKeeper's own command-line client (Java), one command per run. */
export function zkCli(port: number, ...cmd: string[]): Promise<string> {
  return runAsync('/usr/share/zookeeper/bin/zkCli.sh', ['-server', `127.0.0.1:${port}`, ...cmd]);
}

const here = path.dirname(new URL(import.meta.url).pathname);

/**
 * The MongoDB wire-protocol test server (mongo-server.py: mongod is not in Debian), built on the
 * official Python driver's BSON codec (Debian python3-pymongo), run by Debian's own python3.
 */
export async function startMongoTestServer(): Promise<RunningServer> {
  const dir = tmp('mongo');
  const port = await freePort();
  const c = launch('/usr/bin/python3', [path.join(here, 'mongo-server.py'), String(port)], { cwd: dir });
  await waitForPort(port);
  return { port, dir, stop: () => stopChild(c, dir) };
}

/** pymongo driven from stdin (mongo-client.py): `send` writes one command and resolves with its "ok …"/"err …" line. */
export interface MongoDriver {
  send(line: string): Promise<string>;
  close(): Promise<void>;
}

export function startPymongo(port: number): MongoDriver {
  const c = spawn('/usr/bin/python3', [path.join(here, 'mongo-client.py'), String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(c);
  c.on('exit', () => live.delete(c));
  let out = '';
  const waiting: Array<(l: string) => void> = [];
  c.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      waiting.shift()?.(line);
    }
  });
  return {
    send(line) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`pymongo gave no answer to ${line}`)), 20_000);
        waiting.push((l) => {
          clearTimeout(t);
          resolve(l);
        });
        c.stdin?.write(`${line}\n`);
      });
    },
    async close() {
      if (c.exitCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.stdin?.end('quit\n');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (c.exitCode === null) c.kill('SIGKILL');
    },
  };
}
