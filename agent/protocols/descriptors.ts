/**
 * The protocol descriptors of the built-in parsers, as data (no parser code): what the functions
 * (span builder, trace assembly) and the query API (`GET /api/v1/protocols`) read. Each one is
 * declared beside its parser in `agent/protocols/<name>/descriptor.ts`; registry.test.ts holds
 * this list to BUILTIN_PARSERS.
 *
 * @example
 *   const d = descriptorFor('grpc');   // the http2 descriptor (grpc is its alias)
 */
import type { ProtocolDescriptor, ProtocolParser } from './parser.ts';
import { ONE_WAY_ALWAYS } from './parser.ts';
import { amqpDescriptor } from './amqp/descriptor.ts';
import { dnsDescriptor } from './dns/descriptor.ts';
import { http1Descriptor } from './http1/descriptor.ts';
import { http2Descriptor } from './http2/descriptor.ts';
import { kafkaDescriptor } from './kafka/descriptor.ts';
import { mongodbDescriptor } from './mongodb/descriptor.ts';
import { memcachedDescriptor } from './memcached/descriptor.ts';
import { mqttDescriptor } from './mqtt/descriptor.ts';
import { mysqlDescriptor } from './mysql/descriptor.ts';
import { natsDescriptor } from './nats/descriptor.ts';
import { postgresqlDescriptor } from './postgresql/descriptor.ts';
import { redisDescriptor } from './redis/descriptor.ts';
import { tlsDescriptor } from './tls/descriptor.ts';
import { zookeeperDescriptor } from './zookeeper/descriptor.ts';

export const BUILTIN_DESCRIPTORS: readonly ProtocolDescriptor[] = [
  tlsDescriptor,
  http1Descriptor,
  http2Descriptor,
  dnsDescriptor,
  mysqlDescriptor,
  postgresqlDescriptor,
  amqpDescriptor,
  zookeeperDescriptor,
  mongodbDescriptor,
  memcachedDescriptor,
  natsDescriptor,
  redisDescriptor,
  kafkaDescriptor,
  mqttDescriptor,
];

/** Descriptor by every `l7Protocol` name it covers (aliases included). */
export function descriptorTable(descriptors: readonly ProtocolDescriptor[] = BUILTIN_DESCRIPTORS): ReadonlyMap<string, ProtocolDescriptor> {
  const t = new Map<string, ProtocolDescriptor>();
  for (const d of descriptors) for (const n of [d.name, ...d.aliases]) t.set(n, d);
  return t;
}

const BUILTIN_TABLE = descriptorTable();

/** The built-in descriptor covering `l7Protocol`, or undefined (a plugin's protocol). */
export function descriptorFor(l7Protocol: string): ProtocolDescriptor | undefined {
  return BUILTIN_TABLE.get(l7Protocol);
}

/** Descriptors declared in this process beyond the built-ins (Wasm plugins), by every name they cover. */
const declared = new Map<string, ProtocolDescriptor>();

/**
 * Make a plugin protocol's descriptor known to this agent process, so the batches it writes carry
 * it (agent/plugins/host.ts calls this when it loads a plugin). A later declaration of the same
 * name replaces the earlier one; a built-in name cannot be redeclared.
 */
export function declareDescriptor(d: ProtocolDescriptor): void {
  for (const n of [d.name, ...d.aliases]) if (!BUILTIN_TABLE.has(n)) declared.set(n, d);
}

/** The descriptor this agent process knows for `l7Protocol`: built-in, then declared by a plugin. */
export function agentDescriptor(l7Protocol: string): ProtocolDescriptor | undefined {
  return BUILTIN_TABLE.get(l7Protocol) ?? declared.get(l7Protocol);
}

/** A parser's descriptor: its own, or the defaults its `parallel` flag implies (plugins). */
export function descriptorOf(p: ProtocolParser): ProtocolDescriptor {
  return p.descriptor ?? { name: p.name, aliases: [], pairing: p.parallel ? 'by-id' : 'in-order', oneWay: [] };
}

/**
 * The request types a descriptor says are never answered, whatever the bytes say (`when: 'always'`):
 * the span builder closes them as one-way, the conformance suite wants the parser to flag them.
 */
export function alwaysOneWay(d: ProtocolDescriptor): ReadonlySet<string> {
  const out = new Set<string>();
  for (const r of d.oneWay) if (r.when === ONE_WAY_ALWAYS) out.add(r.requestType);
  return out;
}
