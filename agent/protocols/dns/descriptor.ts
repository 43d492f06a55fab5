import type { ProtocolDescriptor } from '../parser.ts';

/** How dns messages pair into spans. Answers in milliseconds or never: a 5 s timeout. */
export const dnsDescriptor: ProtocolDescriptor = {
  name: 'dns',
  pairing: 'by-id',
  aliases: [],
  oneWay: [],
  timeoutMs: 5000,
};
