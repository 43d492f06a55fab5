/**
 * Renders the code derived from the field catalogue (agent/contract/fields.ts) into marked regions
 * of the files that use it, so no fact about a field is kept in step by hand:
 *
 *   // <contract:NAME>
 *   …generated, do not edit…
 *   // </contract:NAME>
 *
 *   npx tsx agent/contract/gen-contract.ts           # rewrite the regions
 *   npx tsx agent/contract/gen-contract.ts --check   # exit 1 when a region is stale (what the test runs)
 *
 * Generated rather than interpreted at run time where the code is hot (the batch codec's L7 record
 * is written and read for every message) or cannot import TypeScript (the AssemblyScript guest).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { L7FieldSpec } from './fields.ts';
import { ABI_EXTRA_TAGS, L7_FIELDS, RTB_L7_VERSION, SPAN_COLUMNS_CATALOGUE, rtbKnownBits, spanRowKey } from './fields.ts';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
const bitName = (f: L7FieldSpec): string => `F_${snake(f.key)}`;
const hex = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

/** The RTB L7 record: presence bits, then the writer (agent/shipping/codec/writer.ts) or the reader (codec/reader.ts). */
function rtbL7(part: 'write' | 'read'): string {
  const fields = L7_FIELDS.filter((f) => f.rtbBit >= 0).sort((a, b) => a.rtbBit - b.rtbBit);
  const versions = Array.from({ length: RTB_L7_VERSION }, (_, i) => i + 1);
  const lines: string[] = [];
  lines.push('// The L7 record: presence bits (uint), the protocol name, then each present field in bit order.');
  lines.push('// Flags have no payload. Append only: a bit belongs to the format version that introduced it.');
  for (const f of fields) lines.push(`const ${bitName(f)} = 1 << ${f.rtbBit}; // ${f.key}, since format ${f.rtbSince}`);
  if (part === 'read') lines.push('/** The presence bits each format version knows. */');
  if (part === 'read') lines.push(`const F_KNOWN: Readonly<Record<number, number>> = { ${versions.map((v) => `${v}: 0x${rtbKnownBits(v).toString(16)}`).join(', ')} };`);
  lines.push('');
  if (part === 'write') rtbL7Writer(fields, lines);
  else rtbL7Reader(fields, lines);
  return lines.join('\n');
}

function rtbL7Writer(fields: readonly L7FieldSpec[], lines: string[]): void {
  lines.push('function writeL7(w: Writer, l: L7Message): void {');
  lines.push('  let bits = 0;');
  for (const f of fields) {
    if (f.kind === 'msgType') continue;
    if (f.kind === 'flag') lines.push(`  if (l.${f.key}) bits |= ${bitName(f)};`);
    else lines.push(`  if (l.${f.key} !== undefined) bits |= ${bitName(f)};`);
  }
  const mt = fields.find((f) => f.kind === 'msgType');
  if (mt) {
    lines.push(`  if (l.msgType === 'response') bits |= ${bitName(mt)};`);
    lines.push("  else if (l.msgType !== 'request') throw new BatchEncodeError(`msgType: unknown value ${JSON.stringify(l.msgType)}`);");
  }
  lines.push("  w.uint(bits, 'l7 flags');");
  lines.push('  w.str(l.l7Protocol);');
  for (const f of fields) {
    const b = bitName(f);
    switch (f.kind) {
      case 'string':
        lines.push(`  if (bits & ${b}) w.str(l.${f.key} as string);`);
        break;
      case 'number':
        lines.push(`  if (bits & ${b}) w.num(l.${f.key} as number);`);
        break;
      case 'status':
        lines.push(`  if (bits & ${b}) w.u8(enumId(STATUSES, l.${f.key} as ResponseStatus, '${f.key}'));`);
        break;
      case 'attributes':
        lines.push(`  if (bits & ${b}) {`);
        lines.push(`    const entries = Object.entries(l.${f.key} as Record<string, string>);`);
        lines.push("    w.uint(entries.length, 'attribute count');");
        lines.push('    for (const [k, v] of entries) {');
        lines.push('      w.str(k);');
        lines.push('      w.str(String(v));');
        lines.push('    }');
        lines.push('  }');
        break;
      case 'flag':
      case 'msgType':
        break;
    }
  }
  lines.push('}');
}

function rtbL7Reader(fields: readonly L7FieldSpec[], lines: string[]): void {
  const mt = fields.find((f) => f.kind === 'msgType');
  lines.push('function readL7(r: Reader, known: number): L7Message {');
  lines.push('  const bits = r.uint();');
  lines.push('  if (bits & ~known) r.fail(`unknown l7 flags ${bits}`);');
  lines.push(`  const msgType: MsgType = bits & ${mt ? bitName(mt) : '0'} ? 'response' : 'request';`);
  lines.push('  const l: L7Message = { l7Protocol: r.str(), msgType };');
  for (const f of fields) {
    const b = bitName(f);
    switch (f.kind) {
      case 'string':
        lines.push(`  if (bits & ${b}) l.${f.key} = r.str();`);
        break;
      case 'number':
        lines.push(`  if (bits & ${b}) l.${f.key} = r.num();`);
        break;
      case 'status':
        lines.push(`  if (bits & ${b}) {`);
        lines.push('    const s = STATUSES[r.u8()];');
        lines.push("    if (s === undefined) r.fail('bad response status');");
        lines.push(`    l.${f.key} = s;`);
        lines.push('  }');
        break;
      case 'attributes':
        lines.push(`  if (bits & ${b}) {`);
        lines.push("    const n = r.count(2, 'attribute');");
        lines.push('    const attrs: Record<string, string> = {};');
        lines.push('    for (let i = 0; i < n; i++) {');
        lines.push('      const k = r.str();');
        lines.push('      attrs[k] = r.str();');
        lines.push('    }');
        lines.push(`    l.${f.key} = attrs;`);
        lines.push('  }');
        break;
      case 'flag':
        lines.push(`  if (bits & ${b}) l.${f.key} = true;`);
        break;
      case 'msgType':
        break;
    }
  }
  lines.push('  return l;');
  lines.push('}');
}

const abiFields = (): L7FieldSpec[] => L7_FIELDS.filter((f) => f.abiTag !== undefined);
const abiTags = (): Array<{ name: string; tag: number; doc: string }> =>
  [...ABI_EXTRA_TAGS, ...abiFields().map((f) => ({ name: f.abiName as string, tag: f.abiTag as number, doc: f.key }))].sort((a, b) => a.tag - b.tag);

/** Host-side tag constants (sdk-plugin/src/abi.ts). */
function abiTagsTs(): string {
  return ['export const Tag = {', ...abiTags().map((t) => `  ${t.name}: ${hex(t.tag)},`), '} as const;'].join('\n');
}

/** Host-side plugin fields (sdk-plugin/src/abi.ts): every L7 field with a tag but the protocol name. */
function abiFieldsTs(): string {
  const type = (f: L7FieldSpec): string => ({ string: 'string', number: 'number', flag: 'boolean', status: 'PluginStatus', attributes: 'Record<string, string>', msgType: 'PluginMsgType' })[f.kind];
  return [
    '/** The fields a plugin can return. Names match the agent\'s `L7Message` one for one. */',
    'export interface PluginFields {',
    ...abiFields().filter((f) => f.key !== 'l7Protocol').flatMap((f) => [`  /** ${f.doc}. */`, `  ${f.key}?: ${type(f)};`]),
    '}',
  ].join('\n');
}

/** Host-side decoding of one field record (sdk-plugin/src/abi.ts, inside applyField's switch). */
function abiDecodeTs(): string {
  const out: string[] = [];
  for (const f of abiFields()) {
    if (f.key === 'l7Protocol') continue; // the host names a plugin's messages itself
    const c = `case ${hex(f.abiTag as number)}:`;
    switch (f.kind) {
      case 'string':
        out.push(`${c} target.${f.key} = decodeUtf8(bytes, off, end); break;`);
        break;
      case 'number':
        // Response codes are signed (i32); lengths and ids unsigned.
        out.push(`${c} target.${f.key} = readU32(tag, dv, off, len)${f.key === 'responseCode' ? ' | 0' : ''}; break;`);
        break;
      case 'flag':
        out.push(`${c} target.${f.key} = true; break;`);
        break;
      case 'status':
        out.push(`${c} {`, '  const st = len === 1 ? STATUSES[bytes[off]] : undefined;', "  if (!st) throw new AbiError('bad response status');", `  target.${f.key} = st;`, '  break;', '}');
        break;
      case 'attributes':
        out.push(
          `${c} {`,
          "  if (len < 4) throw new AbiError('attribute too short');",
          '  const kl = dv.getUint32(off, true);',
          "  if (kl > len - 4) throw new AbiError('attribute key overruns its record');",
          '  const k = decodeUtf8(bytes, off + 4, off + 4 + kl);',
          `  (target.${f.key} ??= {})[k] = decodeUtf8(bytes, off + 4 + kl, end);`,
          '  break;',
          '}',
        );
        break;
      case 'msgType':
        break;
    }
  }
  return out.join('\n');
}

/** Guest-side tag constants (sdk-plugin/assembly/abi.ts, AssemblyScript). */
function abiTagsAs(): string {
  return ['export namespace Tag {', ...abiTags().map((t) => `  export const ${t.name}: u8 = ${hex(t.tag)};`), '}'].join('\n');
}

/** `SpanRow` (functions/span-builder/span-row.ts). */
function spanRow(): string {
  return [
    'export interface SpanRow {',
    ...SPAN_COLUMNS_CATALOGUE.flatMap((c) => [`  /** ${c.doc} */`, `  ${spanRowKey(c)}: ${c.tsType};`]),
    '}',
  ].join('\n');
}

export interface Region {
  /** Repository-relative path. */
  file: string;
  name: string;
  render: () => string;
}

export const REGIONS: readonly Region[] = [
  { file: 'agent/shipping/codec/writer.ts', name: 'rtb-l7-write', render: () => rtbL7('write') },
  { file: 'agent/shipping/codec/reader.ts', name: 'rtb-l7-read', render: () => rtbL7('read') },
  { file: 'sdk-plugin/src/abi.ts', name: 'abi-tags', render: abiTagsTs },
  { file: 'sdk-plugin/src/abi.ts', name: 'abi-fields', render: abiFieldsTs },
  { file: 'sdk-plugin/src/abi.ts', name: 'abi-decode', render: abiDecodeTs },
  { file: 'sdk-plugin/assembly/abi.ts', name: 'abi-tags', render: abiTagsAs },
  { file: 'functions/span-builder/span-row.ts', name: 'span-row', render: spanRow },
];

/** `text` with region `name` replaced by `body`; throws when the markers are missing. */
export function fillRegion(text: string, file: string, name: string, body: string): string {
  const open = `// <contract:${name}>`;
  const close = `// </contract:${name}>`;
  const a = text.indexOf(open);
  const b = text.indexOf(close);
  if (a < 0 || b < a) throw new Error(`${file}: no "${open}" … "${close}" region`);
  const indent = text.slice(text.lastIndexOf('\n', a) + 1, a);
  const lines = body.split('\n').map((l) => (l ? indent + l : l));
  return `${text.slice(0, a)}${open}\n${indent}// GENERATED by agent/contract/gen-contract.ts from agent/contract/fields.ts. Do not edit.\n${lines.join('\n')}\n${indent}${text.slice(b)}`;
}

/** Every file with a region, as the generator would write it. */
export function renderAll(root = REPO): Map<string, string> {
  const files = new Map<string, string>();
  for (const r of REGIONS) {
    const path = join(root, r.file);
    const text = files.get(path) ?? readFileSync(path, 'utf8');
    files.set(path, fillRegion(text, r.file, r.name, r.render()));
  }
  return files;
}

function main(): void {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [path, text] of renderAll()) {
    if (readFileSync(path, 'utf8') === text) continue;
    stale++;
    if (check) console.error(`agent/contract/gen-contract.ts: ${relative(REPO, path)} is stale; run npx tsx agent/contract/gen-contract.ts`);
    else {
      writeFileSync(path, text);
      console.log(`agent/contract/gen-contract.ts: wrote ${relative(REPO, path)}`);
    }
  }
  if (check && stale > 0) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
