import type { ProtocolDescriptor } from '../parser.ts';

/**
 * How TLS handshake metadata pairs into spans: the ClientHello is the request, answered in order
 * by the ServerHello (a HelloRetryRequest answers the first of two ClientHellos) or by a plaintext
 * alert from the server (a refused handshake). An alert the client sends (it rejected the server's
 * certificate in TLS 1.2) follows a ServerHello that already answered: it is a one-way `Alert`.
 */
export const tlsDescriptor: ProtocolDescriptor = {
  name: 'tls',
  pairing: 'in-order',
  aliases: [],
  // Only an alert the client sends is a request (`Alert`): one from the server is the response to
  // the ClientHello. So every `Alert` request is one-way.
  oneWay: [{ requestType: 'Alert', when: 'always' }],
  // OpenSSL without read-ahead reads the 5-byte record header, then the body: the server's
  // ClientHello is parsed from the body read, 5 bytes after the client's write.
  sequenceSlack: [0, 5, -5],
};
