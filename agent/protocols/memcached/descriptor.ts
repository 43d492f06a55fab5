import type { ProtocolDescriptor } from '../parser.ts';

/**
 * How memcached messages pair into spans. Replies come in request order on one connection (text
 * and binary alike); `noreply` text commands and quiet binary opcodes are one-way.
 *
 * No rule is `'always'`: text and binary share request type names. Text `quit` closes the
 * connection without a word, but binary Quit (opcode 0x07) is answered before the close; only
 * quiet binary opcodes are one-way, and on a known stream a text line starting with an unknown
 * word such as `getq` is still a request, answered by `ERROR`. The parser sees which protocol a
 * request came in and flags it.
 */
export const memcachedDescriptor: ProtocolDescriptor = {
  name: 'memcached',
  pairing: 'in-order',
  aliases: [],
  oneWay: [
    { requestType: 'quit', when: 'text protocol' },
    ...['set', 'add', 'replace', 'append', 'prepend', 'cas', 'delete', 'incr', 'decr', 'touch', 'flush_all', 'verbosity'].map((t) => ({ requestType: t, when: 'noreply' })),
    ...['mg', 'ms', 'md', 'ma'].map((t) => ({ requestType: t, when: 'q flag' })),
    ...['getq', 'getkq', 'setq', 'addq', 'replaceq', 'deleteq', 'incrq', 'decrq', 'quitq', 'flushq', 'appendq', 'prependq', 'gatq'].map((t) => ({ requestType: t, when: 'binary protocol' })),
  ],
};
