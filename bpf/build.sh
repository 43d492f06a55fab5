#!/usr/bin/env bash
# Builds the CO-RE capture object from source and regenerates the TypeScript layout from its BTF.
#   bash bpf/build.sh [OUT_DIR]     (default: bpf/ — the committed object lives at bpf/riptide.bpf.o)
# Needs clang, llvm and bpftool (test/run.sh installs them). vmlinux.h comes from the running
# kernel's BTF; CO-RE relocations make the object portable across kernels that have BTF.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
mkdir -p "$here/build" "$out"
for tool in clang bpftool; do
  command -v "$tool" >/dev/null || { echo "bpf/build.sh: $tool is missing (apt-get install clang llvm bpftool)" >&2; exit 1; }
done
if [ ! -s "$here/build/vmlinux.h" ]; then
  bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$here/build/vmlinux.h.tmp"
  mv "$here/build/vmlinux.h.tmp" "$here/build/vmlinux.h"
fi
cd "$here"
# Relative paths and a fixed prefix map keep the object byte-for-byte reproducible.
clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror \
  -fdebug-prefix-map="$here"=. -I build -I . \
  -c riptide.bpf.c -o "$here/build/riptide.tmp.o"
# `gen object` links the object: drops DWARF, keeps BTF and CO-RE relocations, deterministic output.
bpftool gen object "$out/riptide.bpf.o" "$here/build/riptide.tmp.o"
rm -f "$here/build/riptide.tmp.o"
echo "bpf/build.sh: wrote $out/riptide.bpf.o ($(stat -c %s "$out/riptide.bpf.o") bytes, clang $(clang --version | head -1 | grep -o '[0-9][0-9.]*' | head -1))"
cd "$here/.." && npx tsx bpf/gen-layout.ts "$out/riptide.bpf.o" "${LAYOUT_OUT:-agent/capture/layout.generated.ts}"
