import { describe, expect, it } from 'vitest';
import { BUILTIN_PARSERS } from '../../agent/protocols/builtins.ts';
import { BUILTIN_DESCRIPTORS, descriptorFor, descriptorOf } from '../../agent/protocols/descriptors.ts';
import { DEFAULT_TIMEOUTS_MS, SERIAL_PROTOCOLS } from '../../functions/span-builder/span-builder.ts';

describe('protocol descriptors', () => {
  it('every built-in parser declares one, and the data-only list is the same, in the same order', () => {
    for (const p of BUILTIN_PARSERS) expect(p.descriptor, p.name).toBeDefined();
    expect(BUILTIN_DESCRIPTORS).toEqual(BUILTIN_PARSERS.map((p) => p.descriptor));
  });

  it('names and aliases are unique; grpc is an alias of http2', () => {
    const names = BUILTIN_DESCRIPTORS.flatMap((d) => [d.name, ...d.aliases]);
    expect(new Set(names).size).toBe(names.length);
    expect(descriptorFor('grpc')?.name).toBe('http2');
    expect(descriptorFor('my-plugin')).toBeUndefined();
  });

  it('the span builder pairs and times out as the descriptors say (same as the lists they replace)', () => {
    expect([...SERIAL_PROTOCOLS].sort()).toEqual(['http1', 'memcached', 'mysql', 'nats', 'postgresql', 'redis', 'tls']);
    expect(DEFAULT_TIMEOUTS_MS).toEqual({ dns: 5000 });
    expect(descriptorFor('mysql')?.sequenceSlack).toEqual([0, 4, -4]);
    expect(descriptorFor('kafka')?.sequenceSlack).toEqual([0, 4, -4]);
  });

  it('a parser without one (a Wasm plugin) gets the defaults its parallel flag implies', () => {
    const d = descriptorOf({ name: 'tinyrpc', parallel: true, transports: ['tcp'], check: () => false, parse: () => null });
    expect(d).toEqual({ name: 'tinyrpc', aliases: [], pairing: 'by-id', oneWay: [] });
  });
});
