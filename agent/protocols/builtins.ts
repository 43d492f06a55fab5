/**
 * The built-in parsers, in the order inference tries them (plugins go before all of these).
 * Adding a protocol: a folder `agent/protocols/<name>/index.ts` exporting a ProtocolParser, and one
 * line here. Stricter checks come first so a looser one cannot claim another protocol's bytes.
 */

import type { ProtocolParser } from './parser.ts';
import { amqpParser } from './amqp/index.ts';
import { dnsParser } from './dns/index.ts';
import { http1Parser } from './http1/index.ts';
import { http2Parser } from './http2/index.ts';
import { kafkaParser } from './kafka/index.ts';
import { mongodbParser } from './mongodb/index.ts';
import { memcachedParser } from './memcached/index.ts';
import { mqttParser } from './mqtt/index.ts';
import { mysqlParser } from './mysql/index.ts';
import { natsParser } from './nats/index.ts';
import { postgresqlParser } from './postgresql/index.ts';
import { redisParser } from './redis/index.ts';
import { tlsParser } from './tls/index.ts';
import { zookeeperParser } from './zookeeper/index.ts';

export const BUILTIN_PARSERS: readonly ProtocolParser[] = [
  tlsParser,
  http1Parser,
  http2Parser,
  dnsParser,
  mysqlParser,
  postgresqlParser,
  amqpParser,
  zookeeperParser,
  mongodbParser,
  memcachedParser,
  natsParser,
  redisParser,
  kafkaParser,
  mqttParser,
];
