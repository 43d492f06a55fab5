// Instruction lengths on hand-assembled encodings (each checked with binutils `objdump -d`), and the
// Go one-byte-read merger. The decoder is also run against objdump on a whole Go binary in
// test/capture/tls-go.test.ts.
import { describe, expect, it } from 'vitest';
import { GoReadMerger, entryProbeOffset } from './go-tls.ts';
import type { TlsPlaintext } from './tls-join.ts';
import { X86DecodeError, findReturns, instructionLength, instructionStarts } from './x86-decode.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(s.split(' ').map((b) => parseInt(b, 16)));

describe('x86-64 instruction lengths', () => {
  const cases: Array<[string, string]> = [
    ['c3', 'ret'],
    ['f3 c3', 'rep ret'],
    ['c2 08 00', 'ret $0x8'],
    ['48 b8 01 02 03 04 05 06 07 08', 'movabs $imm64,%rax'],
    ['b8 01 00 00 00', 'mov $1,%eax'],
    ['66 b8 01 00', 'mov $1,%ax'],
    ['48 8b 44 24 08', 'mov 0x8(%rsp),%rax'],
    ['48 8b 05 10 00 00 00', 'mov 0x10(%rip),%rax'],
    ['48 8b 04 25 10 00 00 00', 'mov 0x10,%rax (SIB, no base)'],
    ['4c 8d 64 24 98', 'lea -0x68(%rsp),%r12'],
    ['4d 3b 66 10', 'cmp 0x10(%r14),%r12'],
    ['0f 1f 44 00 00', 'nopl 0x0(%rax,%rax,1)'],
    ['66 0f 1f 84 00 00 00 00 00', 'nopw 0x0(%rax,%rax,1)'],
    ['e8 00 00 00 00', 'call rel32'],
    ['0f 84 00 01 00 00', 'je rel32'],
    ['74 05', 'je rel8'],
    ['f6 c1 01', 'test $1,%cl'],
    ['f6 d1', 'not %cl'],
    ['f7 c1 00 00 01 00', 'test $0x10000,%ecx'],
    ['66 f7 c1 00 01', 'test $0x100,%cx'],
    ['48 c7 c1 20 00 00 00', 'mov $0x20,%rcx'],
    ['48 81 ec 00 01 00 00', 'sub $0x100,%rsp'],
    ['48 83 c4 40', 'add $0x40,%rsp'],
    ['f0 48 0f b1 0a', 'lock cmpxchg %rcx,(%rdx)'],
    ['0f 05', 'syscall'],
    ['64 48 8b 0c 25 f8 ff ff ff', 'mov %fs:-8,%rcx'],
    ['48 a1 01 02 03 04 05 06 07 08', 'movabs moffs64,%rax'],
    ['c8 10 00 00', 'enter $0x10,$0'],
    ['66 0f 3a 0f c1 08', 'palignr $8,%xmm1,%xmm0'],
    ['66 0f 38 00 c1', 'pshufb %xmm1,%xmm0'],
    ['0f ba e0 03', 'bt $3,%eax'],
    ['c5 f8 77', 'vzeroupper'],
    ['c5 fe 6f 17', 'vmovdqu (%rdi),%ymm2'],
    ['c4 e3 7d 46 c0 11', 'vperm2i128 $0x11,%ymm0,%ymm0,%ymm0'],
    ['c5 f9 70 c8 1b', 'vpshufd $0x1b,%xmm0,%xmm1'],
    ['62 f1 7c 48 10 07', 'vmovups (%rdi),%zmm0'],
    ['62 f1 7d 48 72 e0 05', 'vpsrad $5,%zmm0,%zmm0'],
    ['62 f1 7c 48 10 47 01', 'vmovups 0x40(%rdi),%zmm0 (disp8*N)'],
    ['cc', 'int3'],
  ];
  for (const [bytes, what] of cases) {
    it(what, () => {
      const code = hex(bytes);
      expect(instructionLength(code, 0)).toBe(code.length);
    });
  }

  it('finds RET only at instruction boundaries', () => {
    // mov %rax,%rbx (48 89 c3: its last byte is C3) ; ret ; int3 padding
    const code = hex('48 89 c3 c3 cc cc');
    expect(instructionStarts(code)).toEqual([0, 3, 4, 5]);
    expect(findReturns(code)).toEqual([3]);
    expect(findReturns(hex('b8 c3 c3 c3 c3 f3 c3'))).toEqual([5]);
  });

  it('refuses truncated and invalid code with the offset', () => {
    expect(() => instructionLength(hex('48'), 0)).toThrow(X86DecodeError);
    expect(() => instructionLength(hex('e8 00 00'), 0)).toThrow(/past the end/);
    expect(() => instructionLength(hex('90 06'), 1)).toThrow(/offset 0x1: opcode 6 is invalid/);
  });
});

describe('Go entry probe placement', () => {
  it("goes on the stack check's branch, where the argument registers are still the call's", () => {
    expect(entryProbeOffset(hex('49 3b 66 10 0f 86 c2 03 00 00 48 83 ec 68'))).toBe(4); // cmp 0x10(%r14),%rsp; jbe
    expect(entryProbeOffset(hex('4c 8d 64 24 98 4d 3b 66 10 0f 86 64 07 00 00'))).toBe(9); // lea -0x68(%rsp),%r12; cmp; jbe
    expect(entryProbeOffset(hex('4c 8d a4 24 00 ff ff ff 4d 3b 66 10 76 10'))).toBe(12); // lea disp32; cmp; jbe rel8
  });
  it('stays on the first byte for any other start', () => {
    expect(entryProbeOffset(hex('55 48 89 e5'))).toBe(0); // push %rbp; mov %rsp,%rbp
    expect(entryProbeOffset(hex('49 3b 66 10 48 83 ec 68'))).toBe(0); // no branch after the compare
    expect(entryProbeOffset(hex('4d 3b 66 10 76 10'))).toBe(0); // compares R12 it did not set
    expect(entryProbeOffset(hex('48 8d 64 24 98 4d 3b 66 10 76 10'))).toBe(0); // lea into RSP, not R12
  });
});

describe('GoReadMerger', () => {
  const pt = (over: Partial<TlsPlaintext>): TlsPlaintext => ({
    pid: 10,
    tid: 11,
    enterNs: 1_000n,
    exitNs: 2_000n,
    ssl: 0xc000n,
    direction: 'ingress',
    bytes: 1,
    payload: new TextEncoder().encode('G'),
    processName: 'srv',
    coroutineId: 7,
    ...over,
  });
  const text = (p: TlsPlaintext): string => new TextDecoder().decode(p.payload);

  it('puts a one-byte background read in front of the next read of the same Conn', () => {
    const out: TlsPlaintext[] = [];
    const m = new GoReadMerger((p) => out.push(p));
    m.push(pt({}));
    expect(out).toEqual([]);
    m.push(pt({ coroutineId: 8, tid: 12, enterNs: 3_000n, exitNs: 4_000n, bytes: 15, payload: new TextEncoder().encode('ET / HTTP/1.1\r\n') }));
    expect(out.map(text)).toEqual(['GET / HTTP/1.1\r\n']);
    // joined through the goroutine that read the ciphertext (the background reader)
    expect(out[0]).toMatchObject({ coroutineId: 7, tid: 11, bytes: 16, enterNs: 1_000n, exitNs: 4_000n });
  });

  it('passes other plaintext through, and a lone byte on after the hold time', () => {
    const out: TlsPlaintext[] = [];
    const m = new GoReadMerger((p) => out.push(p));
    m.push(pt({ coroutineId: 0 })); // not Go
    m.push(pt({ direction: 'egress' }));
    m.push(pt({ bytes: 3, payload: new TextEncoder().encode('abc') }));
    expect(out.map(text)).toEqual(['G', 'G', 'abc']);
    m.push(pt({ ssl: 1n })); // held
    m.push(pt({ ssl: 2n, enterNs: 5_000_000_000n, exitNs: 5_000_000_001n, bytes: 2, payload: new TextEncoder().encode('xy') }));
    expect(out.map(text)).toEqual(['G', 'G', 'abc', 'G', 'xy']);
  });
});
