import type { ProtocolDescriptor } from '../parser.ts';

/** How http2 messages pair into spans. Streams are request ids; gRPC is HTTP/2 reported under its own name. */
export const http2Descriptor: ProtocolDescriptor = {
  name: 'http2',
  pairing: 'by-id',
  aliases: ['grpc'],
  oneWay: [],
};
