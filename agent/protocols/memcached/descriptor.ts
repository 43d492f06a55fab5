import type { ProtocolDescriptor } from '../parser.ts';

/**
 * How memcached messages pair into spans. Replies come in request order on one connection (text
 * and binary alike); `noreply` text commands and quiet binary opcodes are one-way.
 */
export const memcachedDescriptor: ProtocolDescriptor = {
  name: 'memcached',
  pairing: 'in-order',
  aliases: [],
  oneWay: [
    { requestType: 'quit', when: 'always' },
    ...['set', 'add', 'replace', 'append', 'prepend', 'cas', 'delete', 'incr', 'decr', 'touch', 'flush_all', 'verbosity'].map((t) => ({ requestType: t, when: 'noreply' })),
    ...['mg', 'ms', 'md', 'ma'].map((t) => ({ requestType: t, when: 'q flag' })),
    ...['getq', 'getkq', 'setq', 'addq', 'replaceq', 'deleteq', 'incrq', 'decrq', 'quitq', 'flushq', 'appendq', 'prependq', 'gatq'].map((t) => ({ requestType: t, when: 'always (binary quiet opcode)' })),
  ],
};
