import type { ProtocolDescriptor } from '../parser.ts';

/** Methods sent with their `no-wait` bit set get no -Ok. */
const NO_WAIT = ['Exchange.Declare', 'Exchange.Delete', 'Exchange.Bind', 'Exchange.Unbind', 'Queue.Declare', 'Queue.Bind', 'Queue.Purge', 'Queue.Delete', 'Basic.Consume', 'Basic.Cancel', 'Confirm.Select'];

/**
 * How amqp messages pair into spans. A channel carries one synchronous method at a time, so a
 * reply pairs with the request on its channel (request_id = channel number). Content and
 * acknowledgement methods are never answered.
 */
export const amqpDescriptor: ProtocolDescriptor = {
  name: 'amqp',
  pairing: 'by-id',
  aliases: [],
  oneWay: [
    ...['Basic.Publish', 'Basic.Deliver', 'Basic.Return', 'Basic.Ack', 'Basic.Nack', 'Basic.Reject', 'Basic.Recover-Async', 'Connection.Blocked', 'Connection.Unblocked'].map((requestType) => ({ requestType, when: 'always' })),
    ...NO_WAIT.map((requestType) => ({ requestType, when: 'no-wait' })),
  ],
};
