/**
 * The shared parser conformance suite (agent/protocols/conformance.ts), run on the tinyrpc Wasm
 * plugin as the agent loads it: the same checks every built-in parser passes, including that the
 * parser keeps to the descriptor its manifest declares.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadPlugins } from '../../agent/plugins/host.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { describeConformance, descriptorViolations, otherFixtures } from '../../agent/protocols/conformance.ts';
import { agentDescriptor } from '../../agent/protocols/descriptors.ts';
import type { Fixture } from '../../agent/protocols/fixtures.ts';

const dir = new URL('.', import.meta.url).pathname;

/** A fixture's bytes: the .hex file without its comment lines. */
const hex = (name: string): Uint8Array => new Uint8Array(Buffer.from(readFileSync(`${dir}fixtures/${name}.hex`, 'utf8').split('\n').filter((l) => !l.startsWith('#')).join('').replace(/\s+/g, ''), 'hex'));

// A conversation from the plugin's own fixtures: two pipelined calls, answered out of order.
const own: Fixture[] = [
  {
    protocol: 'tinyrpc',
    transport: 'tcp',
    name: 'pipelined-out-of-order',
    description: 'two calls in one write, the second answered first',
    chunks: [
      { dir: 'c2s', data: hex('pipelined-requests') },
      { dir: 's2c', data: hex('out-of-order-responses') },
    ],
  },
];

describe('tinyrpc plugin conformance', async () => {
  const plugins = await loadPlugins({ paths: [dir], reloadIntervalMs: 0, metrics: new MetricsRegistry(), log: () => {} });
  const parser = plugins.parsers.find((p) => p.name === 'tinyrpc');
  if (!parser) throw new Error(`plugins/tinyrpc did not load a tinyrpc parser (have ${plugins.parsers.map((p) => p.name).join(', ') || 'none'})`);

  it('declares its descriptor from the manifest, and the agent process knows it (batches carry it)', () => {
    expect(parser.descriptor).toEqual({ name: 'tinyrpc', aliases: [], pairing: 'by-id', oneWay: [] });
    expect(agentDescriptor('tinyrpc')).toEqual(parser.descriptor);
  });

  it("is held to always-rules like a built-in: a descriptor saying CALL is always one-way fails it", () => {
    expect(descriptorViolations(parser, own)).toEqual([]);
    const claimsOneWay = { ...parser, descriptor: { name: 'tinyrpc', aliases: [], pairing: 'by-id' as const, oneWay: [{ requestType: 'CALL', when: 'always' }] } };
    expect(descriptorViolations(claimsOneWay, own)).toContain("pipelined-out-of-order: CALL has a when: 'always' one-way rule, but the parser did not set oneWay");
  });

  // streaming: false — ABI v1 calls are stateless (bytes in, messages out), so a message split
  // across two reads is not reassembled: with streaming on, "split at any byte" fails (a known
  // limitation of the plugin ABI, not of tinyrpc; see sdk-plugin/ABI.md).
  describeConformance(parser, { own, others: otherFixtures('tinyrpc'), streaming: false });
});
