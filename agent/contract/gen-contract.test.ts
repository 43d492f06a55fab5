import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeMessages, Tag } from '../../sdk-plugin/src/abi.ts';
import { ABI_EXTRA_TAGS, L7_FIELDS, RTB_L7_VERSION, SPAN_COLUMNS_CATALOGUE, rtbKnownBits, spanRowKey } from './fields.ts';
import { renderAll } from './gen-contract.ts';
import { BATCH_FORMAT_VERSION, READABLE_FORMAT_VERSIONS } from '../shipping/codec.ts';

describe('field catalogue', () => {
  it('the generated regions are what agent/contract/gen-contract.ts renders (run it after editing fields.ts)', () => {
    for (const [path, text] of renderAll()) expect(readFileSync(path, 'utf8'), path).toBe(text);
  });

  it('keys, RTB bits, NDJSON keys, ABI tags and span columns are unique', () => {
    const unique = (xs: readonly unknown[]): void => expect(new Set(xs).size).toBe(xs.length);
    unique(L7_FIELDS.map((f) => f.key));
    unique(L7_FIELDS.map((f) => f.ndjson));
    unique(L7_FIELDS.filter((f) => f.rtbBit >= 0).map((f) => f.rtbBit));
    unique([...L7_FIELDS.filter((f) => f.abiTag !== undefined).map((f) => f.abiTag), ...ABI_EXTRA_TAGS.map((t) => t.tag)]);
    unique(SPAN_COLUMNS_CATALOGUE.map((c) => c.column));
    unique(SPAN_COLUMNS_CATALOGUE.map(spanRowKey));
    const columns = new Set(SPAN_COLUMNS_CATALOGUE.map((c) => c.column));
    for (const f of L7_FIELDS) for (const c of f.spanColumns) expect(columns.has(c), `${f.key} → ${c}`).toBe(true);
  });

  it('RTB: the writer writes the newest format, every format is readable, and old bits never move', () => {
    expect(BATCH_FORMAT_VERSION).toBe(RTB_L7_VERSION);
    for (const v of new Set(L7_FIELDS.map((f) => f.rtbSince))) expect(READABLE_FORMAT_VERSIONS).toContain(v);
    // Format 1 as released: bits 0..16.
    expect(rtbKnownBits(1)).toBe((1 << 17) - 1);
    expect(rtbKnownBits(2)).toBe((1 << 19) - 1);
  });

  it('plugin ABI: a record for every tagged field decodes into that field', () => {
    const enc = new TextEncoder();
    const rec = (tag: number, value: Uint8Array): number[] => [tag, ...new Uint8Array(new Uint32Array([value.length]).buffer), ...value];
    const bytes: number[] = rec(Tag.MESSAGE, Uint8Array.of(1));
    const want: Record<string, unknown> = { msgType: 'response' };
    for (const f of L7_FIELDS) {
      if (f.abiTag === undefined || f.key === 'l7Protocol') continue;
      if (f.kind === 'string') {
        bytes.push(...rec(f.abiTag, enc.encode(`${f.key}-✓`)));
        want[f.key] = `${f.key}-✓`;
      } else if (f.kind === 'number') {
        bytes.push(...rec(f.abiTag, new Uint8Array(new Uint32Array([f.abiTag]).buffer)));
        want[f.key] = f.abiTag;
      } else if (f.kind === 'flag') {
        bytes.push(...rec(f.abiTag, new Uint8Array(0)));
        want[f.key] = true;
      } else if (f.kind === 'status') {
        bytes.push(...rec(f.abiTag, Uint8Array.of(2)));
        want[f.key] = 'server_error';
      } else if (f.kind === 'attributes') {
        const k = enc.encode('key');
        bytes.push(...rec(f.abiTag, Uint8Array.from([...new Uint8Array(new Uint32Array([k.length]).buffer), ...k, ...enc.encode('value')])));
        want[f.key] = { key: 'value' };
      }
    }
    expect(decodeMessages(Uint8Array.from(bytes))).toEqual([want]);
  });
});
