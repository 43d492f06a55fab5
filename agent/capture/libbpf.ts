/**
 * The slice of libbpf (Debian's libbpf1) and libc that the loader needs, bound through koffi.
 * Loaded lazily: importing this module costs nothing until {@link libbpf} is called, so commands
 * that never touch BPF (and machines without libbpf) are unaffected.
 *
 * libbpf ≥ 1.0 reports errors as NULL / negative return values with errno set; {@link check}
 * and {@link checkPtr} turn them into exceptions that name the call.
 */
import koffi from 'koffi';

/** A C pointer: koffi 3 represents pointers as BigInt; null is NULL. */
export type Ptr = bigint | null;

export interface Libbpf {
  object_open_file(path: string, opts: null): Ptr;
  object_load(obj: Ptr): number;
  object_close(obj: Ptr): void;
  object_find_map_by_name(obj: Ptr, name: string): Ptr;
  object_next_program(obj: Ptr, prev: Ptr): Ptr;
  program_name(prog: Ptr): string;
  program_section_name(prog: Ptr): string;
  program_set_autoload(prog: Ptr, autoload: boolean): number;
  program_attach(prog: Ptr): Ptr;
  program_attach_uprobe(prog: Ptr, retprobe: boolean, pid: number, path: string, offset: number): Ptr;
  link_destroy(link: Ptr): number;
  map_set_initial_value(map: Ptr, data: Buffer, size: number): number;
  map_value_size(map: Ptr): number;
  map_set_max_entries(map: Ptr, n: number): number;
  map_fd(map: Ptr): number;
  map_update_elem(fd: number, key: Buffer, value: Buffer, flags: bigint): number;
  map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  map_delete_elem(fd: number, key: Buffer): number;
  num_possible_cpus(): number;
  probe_bpf_prog_type(type: number, opts: null): number;
  set_print(fn: bigint | null): bigint | null;
  mmap(addr: Ptr, len: number, prot: number, flags: number, fd: number, off: bigint): Ptr;
  munmap(addr: Ptr, len: number): number;
  geteuid(): number;
  vsnprintf(buf: Buffer, n: number, fmt: Ptr, ap: Ptr): number;
  strerror(errnum: number): string;
}

let cached: Libbpf | null = null;
let printCallback: bigint | null = null;
let printProto: ReturnType<typeof koffi.proto> | null = null;

/** Binds libbpf.so.1 and libc. Throws with a clear message when libbpf is not installed. */
export function libbpf(): Libbpf {
  if (cached) return cached;
  let bpf: ReturnType<typeof koffi.load>;
  try {
    bpf = koffi.load('libbpf.so.1');
  } catch (err) {
    throw new Error(`libbpf is not installed (apt-get install libbpf1): ${(err as Error).message}`);
  }
  const libc = koffi.load('libc.so.6');
  cached = {
    object_open_file: bpf.func('void *bpf_object__open_file(const char *path, void *opts)'),
    object_load: bpf.func('int bpf_object__load(void *obj)'),
    object_close: bpf.func('void bpf_object__close(void *obj)'),
    object_find_map_by_name: bpf.func('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    object_next_program: bpf.func('void *bpf_object__next_program(void *obj, void *prev)'),
    program_name: bpf.func('const char *bpf_program__name(void *prog)'),
    program_section_name: bpf.func('const char *bpf_program__section_name(void *prog)'),
    program_set_autoload: bpf.func('int bpf_program__set_autoload(void *prog, bool autoload)'),
    program_attach: bpf.func('void *bpf_program__attach(void *prog)'),
    program_attach_uprobe: bpf.func('void *bpf_program__attach_uprobe(void *prog, bool retprobe, int pid, const char *path, size_t offset)'),
    link_destroy: bpf.func('int bpf_link__destroy(void *link)'),
    map_set_initial_value: bpf.func('int bpf_map__set_initial_value(void *map, const uint8_t *data, size_t size)'),
    map_value_size: bpf.func('uint32_t bpf_map__value_size(void *map)'),
    map_set_max_entries: bpf.func('int bpf_map__set_max_entries(void *map, uint32_t n)'),
    map_fd: bpf.func('int bpf_map__fd(void *map)'),
    map_update_elem: bpf.func('int bpf_map_update_elem(int fd, const uint8_t *key, const uint8_t *value, uint64_t flags)'),
    map_lookup_elem: bpf.func('int bpf_map_lookup_elem(int fd, const uint8_t *key, _Out_ uint8_t *value)'),
    map_delete_elem: bpf.func('int bpf_map_delete_elem(int fd, const uint8_t *key)'),
    num_possible_cpus: bpf.func('int libbpf_num_possible_cpus(void)'),
    probe_bpf_prog_type: bpf.func('int libbpf_probe_bpf_prog_type(int type, void *opts)'),
    set_print: bpf.func('void *libbpf_set_print(void *fn)'),
    mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)'),
    munmap: libc.func('int munmap(void *addr, size_t len)'),
    geteuid: libc.func('uint32_t geteuid(void)'),
    vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t n, void *fmt, void *ap)'),
    strerror: libc.func('const char *strerror(int errnum)'),
  } as Libbpf;
  return cached;
}

/** Last errno as "EPERM: Operation not permitted" style text. */
export function errnoText(code = koffi.errno()): string {
  const name = Object.entries(koffi.os.errno as Record<string, number>).find(([, v]) => v === code)?.[0];
  return `${name ?? 'errno ' + code}: ${libbpf().strerror(code)}`;
}

/** Throws when a libbpf int API failed (negative return). */
export function check(ret: number, what: string): number {
  if (ret < 0) throw new Error(`${what} failed: ${errnoText(-ret)}`);
  return ret;
}

/** Throws when a libbpf pointer API returned NULL. */
export function checkPtr(ptr: Ptr, what: string): bigint {
  if (ptr === null || ptr === 0n) throw new Error(`${what} failed: ${errnoText()}`);
  return ptr;
}

/**
 * Routes libbpf's own log lines to `sink` (default: dropped below warnings) instead of stderr,
 * so users see one clear line from us rather than libbpf's multi-line verifier dumps.
 */
export function captureLibbpfLog(sink: (level: 'warn' | 'info' | 'debug', line: string) => void): void {
  const lib = libbpf();
  const buf = Buffer.alloc(4096);
  // koffi refuses to declare the same prototype twice: once per process, however many loads.
  printProto ??= koffi.proto('int riptide_libbpf_print(int level, void *fmt, void *args)');
  const PrintFn = printProto;
  if (printCallback !== null) koffi.unregister(printCallback);
  printCallback = koffi.register((level: number, fmt: bigint, args: bigint) => {
    const n = lib.vsnprintf(buf, buf.length, fmt, args);
    const text = buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1))).toString('utf8').trimEnd();
    sink(level === 0 ? 'warn' : level === 1 ? 'info' : 'debug', text);
    return 0;
  }, koffi.pointer(PrintFn));
  lib.set_print(printCallback);
}

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_FAILED = 0xffffffffffffffffn;

/** enum bpf_prog_type values used by the feature probes. */
export const BpfProgType = {
  KPROBE: 2,
  TRACEPOINT: 5,
  PERF_EVENT: 7,
  RAW_TRACEPOINT: 17,
  TRACING: 26, // fentry/fexit, tp_btf
  SOCKET_FILTER: 1,
  SCHED_CLS: 3,
} as const;
