import { describe, expect, it } from 'vitest';
import { ExitCode, toCliError } from './command.ts';
import { redact } from './redact.ts';

describe('redact', () => {
  it('hides URL passwords and bearer tokens, keeps the rest', () => {
    expect(redact('cannot open ClickHouse at http://u:s3cret@127.0.0.1:1/db: refused')).toBe('cannot open ClickHouse at http://u:***@127.0.0.1:1/db: refused');
    expect(redact('s3://key:p%40ss@bucket/x and https://a:b:c@h')).toBe('s3://key:***@bucket/x and https://a:***@h');
    expect(redact('Authorization: Bearer abc.def')).toBe('Authorization: Bearer ***');
    expect(redact('http://user@host:8123 file:///tmp/x')).toBe('http://user@host:8123 file:///tmp/x');
  });
});

describe('toCliError', () => {
  const sys = (code: string, syscall?: string): Error => Object.assign(new Error(`${syscall ?? 'op'} ${code}`), { code, syscall });
  it('classifies system errors into the documented exit codes', () => {
    expect(toCliError(sys('EADDRINUSE', 'listen')).exitCode).toBe(ExitCode.listen);
    expect(toCliError(sys('EACCES', 'listen')).exitCode).toBe(ExitCode.listen);
    expect(toCliError(sys('ECONNREFUSED', 'connect')).exitCode).toBe(ExitCode.unreachable);
    expect(toCliError(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ENOTFOUND' } })).exitCode).toBe(ExitCode.unreachable);
    expect(toCliError(sys('EPERM', 'bpf')).exitCode).toBe(ExitCode.denied);
    expect(toCliError(sys('ENOENT', 'open')).exitCode).toBe(ExitCode.usage);
    const internal = toCliError(new Error('boom\n  at somewhere'));
    expect([internal.exitCode, internal.message]).toEqual([ExitCode.failed, 'internal error: boom']);
  });
});
