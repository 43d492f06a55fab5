/**
 * A tiny SQL summariser: "verb table" for the span endpoint (`SELECT users`, `INSERT orders`), from
 * the head of a statement. It never parses SQL; it reads the first keyword and the table after the
 * keyword that names it, skipping leading comments.
 */
import { text, utf8CompleteEnd } from './bytes.ts';

/** Longest statement text a span keeps, in bytes (cut on a UTF-8 character boundary). */
export const MAX_SQL_BYTES = 512;

/**
 * Statement text from bytes [start, end): at most MAX_SQL_BYTES, never ending inside a UTF-8
 * character. `cut` says the bytes stop before the statement's real end (a capture limit, a read
 * split) so a partial last character is dropped too; a statement that ends where it should keeps
 * whatever bytes it has.
 */
export function utf8Sql(buf: Uint8Array, start: number, end: number, cut = end > buf.length): string {
  if (cut) end = utf8CompleteEnd(buf, start, Math.min(end, buf.length));
  return text(buf, start, end, MAX_SQL_BYTES);
}

const TABLE_AFTER: Record<string, string> = {
  SELECT: 'FROM',
  DELETE: 'FROM',
  INSERT: 'INTO',
  REPLACE: 'INTO',
  UPDATE: '',
  CREATE: 'TABLE',
  DROP: 'TABLE',
  ALTER: 'TABLE',
  TRUNCATE: '',
};

export function sqlVerb(sql: string): string {
  const s = stripLeadingComments(sql);
  const m = /^[A-Za-z]+/.exec(s);
  return m ? m[0].toUpperCase() : '';
}

export function sqlEndpoint(sql: string): string {
  const s = stripLeadingComments(sql).slice(0, 256);
  const verb = sqlVerb(s);
  if (!verb) return '';
  const after = TABLE_AFTER[verb];
  if (after === undefined) return verb;
  const words = s.split(/[\s(),;]+/).filter(Boolean);
  let i = 1;
  if (after !== '') {
    while (i < words.length && words[i].toUpperCase() !== after) i++;
    i++;
  }
  while (i < words.length && /^(TABLE|ONLY|IF|NOT|EXISTS|INTO|LOW_PRIORITY|IGNORE|TEMPORARY)$/i.test(words[i])) i++;
  const table = words[i]?.replace(/[`"';]/g, '');
  return table && /^[\w.$]+$/.test(table) ? `${verb} ${table}` : verb;
}

function stripLeadingComments(sql: string): string {
  let s = sql.trimStart();
  for (let guard = 0; guard < 8; guard++) {
    if (s.startsWith('/*')) {
      const end = s.indexOf('*/');
      if (end < 0) return '';
      s = s.slice(end + 2).trimStart();
    } else if (s.startsWith('--')) {
      const end = s.indexOf('\n');
      if (end < 0) return '';
      s = s.slice(end + 1).trimStart();
    } else break;
  }
  return s;
}
