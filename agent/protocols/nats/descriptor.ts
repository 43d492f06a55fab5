import type { ProtocolDescriptor } from '../parser.ts';

/**
 * How NATS messages pair into spans. NATS answers in order on a connection, but only a client
 * that asked for `"verbose": true` in CONNECT gets a `+OK` for each CONNECT, PUB, HPUB, SUB and
 * UNSUB; every client library sends `"verbose": false`, and then those operations are one-way
 * (an error comes back as `-ERR` alone, most of them closing the connection). PING is answered by
 * PONG in both directions (the server pings idle clients too). MSG/HMSG (a delivery to a
 * subscriber) and INFO are one-way messages from the server. When the parser saw CONNECT it knows
 * the mode; on a connection first seen mid-stream it assumes non-verbose until a `+OK` shows
 * otherwise.
 */
export const natsDescriptor: ProtocolDescriptor = {
  name: 'nats',
  pairing: 'in-order',
  aliases: [],
  oneWay: [
    ...['CONNECT', 'PUB', 'HPUB', 'SUB', 'UNSUB'].map((t) => ({ requestType: t, when: 'not verbose (the default of every client library)' })),
    // A delivery to a subscriber: nothing answers it (an ack, if any, is a PUB to its reply subject).
    { requestType: 'MSG', when: 'always' },
    { requestType: 'HMSG', when: 'always' },
    { requestType: 'INFO', when: 'always' },
  ],
};
