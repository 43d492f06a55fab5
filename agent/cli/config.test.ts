import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from './command.ts';
import { commonOptions, loadConfig } from './config.ts';

describe('loadConfig', () => {
  const yaml = (text: string): string => {
    const f = join(mkdtempSync(join(tmpdir(), 'rt-cfg-')), 'c.yaml');
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
});
