/**
 * infra/docker and infra/systemd: the Dockerfile passes our lint rules (dockerfile-lint.ts) and
 * points at files that exist; the shell scripts pass shellcheck; the systemd unit keeps the
 * settings BPF capture needs and passes `systemd-analyze verify` where systemd is installed;
 * install.sh answers --help and plans the steps it promises in a dry run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lintDockerfile, parseDockerfile } from './dockerfile-lint.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DOCKERFILE = join(ROOT, 'infra', 'docker', 'Dockerfile');
const UNIT = join(ROOT, 'infra', 'systemd', 'riptide-agent.service');
const INSTALL = join(ROOT, 'infra', 'systemd', 'install.sh');

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

describe('infra/docker', () => {
  const text = readFileSync(DOCKERFILE, 'utf8');

  it('passes the lint rules', () => {
    expect(lintDockerfile(text)).toEqual([]);
  });

  it('the linter flags what it exists for', () => {
    const bad = ['FROM node:latest', 'RUN apt-get install libbpf1', 'RUN npm install', 'ADD . /app', 'WORKDIR app', 'CMD node x.js', 'USER root'].join('\n');
    const rules = lintDockerfile(bad).map((p) => p.replace(/^line \d+ /, '').split(':')[0]);
    expect(rules).toEqual(['DL3007', 'DL3006', 'DL3015', 'DL3014', 'DL3009', 'RT001', 'DL3020', 'DL3000', 'DL3025', 'DL3002', 'RT005']);
  });

  it('bases on bookworm-slim with a Node that meets package.json engines', () => {
    const from = parseDockerfile(text).find((i) => i.keyword === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    const m = /^NODE_IMAGE=node:(\d+)\.(\d+)\.(\d+)-bookworm-slim$/.exec(from?.args ?? '');
    expect(m, 'NODE_IMAGE=node:X.Y.Z-bookworm-slim').not.toBeNull();
    const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const [, major, minor] = /(\d+)\.(\d+)/.exec(engines) ?? [];
    const ok = Number(m?.[1]) > Number(major) || (Number(m?.[1]) === Number(major) && Number(m?.[2]) >= Number(minor));
    expect(ok, `${from?.args} vs engines ${engines}`).toBe(true);
    expect(text).toMatch(/apt-get install -y --no-install-recommends libbpf1/);
  });

  it('runs the CLI entry point that exists, copying the lockfile npm ci needs', () => {
    const entry = parseDockerfile(text).find((i) => i.keyword === 'ENTRYPOINT');
    const argv = JSON.parse(entry?.args ?? '[]') as string[];
    expect(argv[0]).toBe('node');
    expect(argv[1].startsWith('/opt/riptide/')).toBe(true);
    expect(existsSync(join(ROOT, argv[1].slice('/opt/riptide/'.length)))).toBe(true);
    expect(existsSync(join(ROOT, 'package-lock.json'))).toBe(true);
    expect(text).toMatch(/WORKDIR \/opt\/riptide/); // the migration Job's workingDir
  });

  it('keeps node_modules, .git and local state out of the build context', () => {
    const ignore = readFileSync(join(ROOT, 'infra', 'docker', 'Dockerfile.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['.git', '**/node_modules', '.riptide']) expect(ignore).toContain(p);
    // What the image runs must not be filtered out.
    for (const p of ['bpf', 'agent', 'functions', 'lib', 'infra', 'plugins', 'bpf/riptide.bpf.o']) expect(ignore).not.toContain(p);
  });
});

describe('infra/systemd', () => {
  const unit = readFileSync(UNIT, 'utf8');
  const settings = new Map<string, string>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) settings.set(m[1], m[2]);
  }

  it('the unit runs the agent with the BPF capabilities and its env file', () => {
    expect(settings.get('ExecStart')).toMatch(/node \/opt\/riptide\/agent\/cli\/riptide\.mjs agent$/);
    expect(settings.get('EnvironmentFile')).toBe('/etc/riptide/agent.env');
    expect(settings.get('Restart')).toBe('on-failure');
    for (const key of ['AmbientCapabilities', 'CapabilityBoundingSet']) {
      expect(settings.get(key)?.split(/\s+/), key).toEqual(expect.arrayContaining(['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN']));
    }
    expect(settings.get('StateDirectory')).toBe('riptide');
    expect(unit).toMatch(/^Environment=RIPTIDE_DATA_DIR=\/var\/lib\/riptide$/m);
  });

  it('the hardening leaves what the agent needs', () => {
    // V8 JITs into writable+executable pages; /proc of every process is read for metadata.
    expect(settings.get('MemoryDenyWriteExecute')).not.toBe('yes');
    expect(settings.has('ProtectProc')).toBe(false);
    expect(settings.has('ProcSubset')).toBe(false);
    expect(settings.has('PrivateNetwork')).toBe(false);
    expect(settings.get('SystemCallFilter')).toBeUndefined();
    expect(settings.get('ProtectSystem')).toBe('strict');
  });

  it('passes systemd-analyze verify', (ctx) => {
    if (!has('systemd-analyze')) {
      ctx.skip('systemd-analyze is not installed here');
      return;
    }
    const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the shell scripts pass shellcheck', () => {
    expect(has('shellcheck'), 'shellcheck is missing: apt-get install shellcheck (test/system-packages.txt lists it)').toBe(true);
    const scripts = ['systemd', 'docker'].flatMap((d) => readdirSync(join(ROOT, 'infra', d)).filter((f) => f.endsWith('.sh')).map((f) => join(ROOT, 'infra', d, f)));
    expect(scripts).toContain(INSTALL);
    expect(execFileSync('shellcheck', ['-x', ...scripts], { encoding: 'utf8' })).toBe('');
  });

  it('install.sh answers --help and refuses unknown options in one line', () => {
    const help = spawnSync(INSTALL, ['--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: infra\/systemd\/install\.sh/);
    const bad = spawnSync(INSTALL, ['--frobnicate'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n')).toEqual(['install.sh: unknown option --frobnicate (see --help)']);
  });

  it('install.sh plans npm ci, the env file and the unit in a dry run', () => {
    const r = spawnSync(INSTALL, ['--dry-run', '--store', 's3://traces/prod', '--prefix', '/srv/riptide', '--no-start'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const steps = r.stdout.split('\n').filter((l) => l.startsWith('+ '));
    expect(steps).toEqual(
      expect.arrayContaining([
        '+ (cd /srv/riptide.new && npm ci --omit=dev --no-audit --no-fund)',
        '+ mv /srv/riptide.new /srv/riptide',
        '+ set RIPTIDE_STORE in /etc/riptide/agent.env',
        '+ install /etc/systemd/system/riptide-agent.service (code in /srv/riptide, settings in /etc/riptide/agent.env)',
      ]),
    );
    expect(steps.some((s) => s.includes('systemctl restart'))).toBe(false);
  });
});
