// The plugin quick start of sdk-plugin/README.md, as a new user runs it: in a fresh copy of the
// repository (its tracked and new files, node_modules linked), the commands of the README's
// "Quick start" block are read from the README and run verbatim with bash. Then the plugin is
// loaded the way the agent loads it and fed realistic JSON API responses of 1–16 KiB, which the
// default time budget must cover (the template's own limits, no tuning).
import { execFileSync, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlugins } from '../../agent/plugins/host.ts';
import type { LoadedPlugins } from '../../agent/plugins/host.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import type { L7Message, ParseContext } from '../../agent/protocols/parser.ts';
import { apiBody, httpResponse } from '../helpers/api-bodies.ts';
import { REPO } from '../helpers/agent.ts';

/** The command lines of the first indented block under "## Quick start", comments stripped. */
function quickStartCommands(readme: string): string[] {
  const section = readme.split(/^## Quick start$/m)[1]?.split(/^## /m)[0];
  if (!section) throw new Error('sdk-plugin/README.md has no "## Quick start" section');
  const block = section.split('\n\n').find((p) => p.split('\n').every((l) => l.startsWith('    ')));
  if (!block) throw new Error('the Quick start section has no indented command block');
  return block.split('\n').map((l) => l.trim().replace(/\s+#.*$/, '')).filter(Boolean);
}

function run(cmd: string, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', cmd], { cwd, env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`\`${cmd}\` exited ${code}:\n${out}`))));
  });
}

describe('plugin quick start (sdk-plugin/README.md)', () => {
  let scratch: string;
  let repo: string;
  let plugins: LoadedPlugins | undefined;
  const logs: string[] = [];

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'riptide-quickstart-'));
    repo = join(scratch, 'riptide');
    // the working tree as a user would have it after a clone (plus any uncommitted work)
    const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of files) {
      await mkdir(dirname(join(repo, f)), { recursive: true });
      await copyFile(join(REPO, f), join(repo, f)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err; // deleted in the working tree
      });
    }
    await symlink(join(REPO, 'node_modules'), join(repo, 'node_modules'));
  });
  afterAll(async () => {
    plugins?.close();
    await rm(scratch, { recursive: true, force: true });
  });

  it('copy, build, test and check run as written', { timeout: 900_000 }, async () => {
    const commands = quickStartCommands(await readFile(join(repo, 'sdk-plugin', 'README.md'), 'utf8'));
    expect(commands[0]).toBe('cp -r sdk-plugin/template plugins/my-plugin');
    expect(commands.some((c) => c.startsWith('npx riptide plugin build '))).toBe(true);
    expect(commands.some((c) => c.startsWith('npx vitest run '))).toBe(true);
    expect(commands.some((c) => c.startsWith('npx riptide plugin check '))).toBe(true);
    const outputs: string[] = [];
    for (const cmd of commands) outputs.push(await run(cmd, repo));
    const [, build, test, check] = outputs;
    expect(build).toMatch(/^built my-plugin@0\.1\.0 in \d+ ms/m);
    expect(test).toMatch(/1 passed/);
    expect(test).toMatch(/fixture failed \(http_response, \d+ B\): \d+ fuel of 2500000/); // the author sees the fuel
    expect(check).toMatch(/^ok my-plugin@0\.1\.0: loads, ABI v1, hooks verified, metered/m);
  });

  it('the built plugin stays active under the agent on 1–16 KiB JSON bodies', async () => {
    plugins = await loadPlugins({ paths: [join(repo, 'plugins', 'my-plugin')], reloadIntervalMs: 0, metrics: new MetricsRegistry(), log: (l) => logs.push(l) });
    expect(plugins.host.status()[0]).toMatchObject({ name: 'my-plugin', state: 'active' });
    const hook = plugins.httpHooks[0];
    const ctx: ParseContext = { direction: 'ingress', role: 'client', l4: 'tcp', localPort: 40000, remotePort: 8080, socketId: 1, bytes: 0, state: {} };
    const msg: L7Message = { l7Protocol: 'http1', msgType: 'response', responseCode: 200 };
    for (const size of [1024, 2048, 4096, 8192, 16384]) {
      const failed = httpResponse(apiBody(size, { status: 'failed' }));
      expect(hook.onHttpResponse(msg, failed, { ...ctx, bytes: failed.length }), `${size} B`).toMatchObject({ responseStatus: 'server_error', responseException: 'status: failed' });
      const fine = httpResponse(apiBody(size, { status: 'ok' }));
      expect(hook.onHttpResponse(msg, fine, { ...ctx, bytes: fine.length }), `${size} B`).toBeNull();
    }
    expect(logs, logs.join('\n')).toEqual([]);
    expect(plugins.host.status()[0].state).toBe('active');
  });
});
