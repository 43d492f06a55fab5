import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from './command.ts';
import { commonOptions, loadConfig } from './config.ts';

describe('loadConfig', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const yaml = (text: string): string => {
    const dir = mkdtempSync(join(tmpdir(), 'rt-cfg-'));
    dirs.push(dir);
    const f = join(dir, 'c.yaml');
    writeFileSync(f, text);
    return f;
  };

  it('takes a flag over a RIPTIDE_ variable over the YAML file over the default', () => {
    const file = yaml('port: 1111\ndata-dir: /from/yaml\nstore: file:///yaml\n');
    const env = { RIPTIDE_PORT: '2222', RIPTIDE_DATA_DIR: '/from/env' };
    const cfg = loadConfig(['--config', file, '--port', '3333'], commonOptions, env);
    expect(cfg.number('port')).toBe(3333);
    expect(cfg.string('data-dir')).toBe('/from/env');
    expect(cfg.string('store')).toBe('file:///yaml');
    expect(cfg.string('clickhouse-url')).toBeUndefined();
    expect(loadConfig([], commonOptions, {}).number('port')).toBe(8686);
  });

  it('accepts --flag=value, lists and booleans', () => {
    const specs = [...commonOptions, { name: 'ids', type: 'list' as const, help: '' }, { name: 'demo', type: 'boolean' as const, help: '' }];
    const cfg = loadConfig(['--ids=1,2', '--ids', '3', '--demo', '--s3-endpoint=http://x'], specs, {});
    expect(cfg.list('ids')).toEqual(['1', '2', '3']);
    expect(cfg.bool('demo')).toBe(true);
    expect(cfg.string('s3-endpoint')).toBe('http://x');
  });

  it('refuses unknown flags, bad numbers, unknown YAML keys and bad YAML with a clear message', () => {
    expect(() => loadConfig(['--nope'], commonOptions, {})).toThrow(new UsageError('unknown flag --nope (see --help)'));
    expect(() => loadConfig(['--port', 'x'], commonOptions, {})).toThrow(/--port from the command line must be a number/);
    expect(() => loadConfig([], commonOptions, { RIPTIDE_PORT: 'abc' })).toThrow(/from \$RIPTIDE_PORT must be a number/);
    expect(() => loadConfig(['--config', yaml('colour: blue\n')], commonOptions, {})).toThrow(/unknown key "colour"/);
    expect(() => loadConfig(['--config', yaml('port: [\n')], commonOptions, {})).toThrow(/not valid YAML/);
    expect(() => loadConfig(['--config', '/no/such/file.yaml'], commonOptions, {})).toThrow(/cannot read config file/);
  });

  it('takes --config on every command, and common keys of other roles in a shared file', () => {
    const file = yaml('port: 9\nclickhouse-url: http://ch:8123\n');
    const cfg = loadConfig(['--config', file, '--x', 'a'], [{ name: 'x', type: 'string', help: '' }, { name: 'port', type: 'number', help: '' }], {});
    expect([cfg.string('x'), cfg.number('port'), cfg.get('clickhouse-url')]).toEqual(['a', 9, undefined]);
    expect([...cfg.flagsGiven]).toEqual(['config', 'x']);
    expect(() => loadConfig(['--config', yaml('colour: blue\n')], [], {})).toThrow(/unknown key "colour"/);
  });

  it('reads an option from its own variable when it names one', () => {
    const specs = [{ name: 'token', type: 'string' as const, help: '', env: 'RIPTIDE_MARKETPLACE_TOKEN' }];
    expect(loadConfig([], specs, { RIPTIDE_TOKEN: 'query' }).string('token')).toBeUndefined();
    expect(loadConfig([], specs, { RIPTIDE_TOKEN: 'query', RIPTIDE_MARKETPLACE_TOKEN: 'market' }).string('token')).toBe('market');
  });
});
