/**
 * The slice of the WebAssembly JS API the sandbox uses, typed here because the project's `lib`
 * (ES2023, no DOM) and @types/node 20 do not declare it fully.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
export interface WasmGlobal {
  value: number;
}
export type WasmModule = object;
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  validate(bytes: Uint8Array): boolean;
  instantiate(module: WasmModule, imports: Record<string, Record<string, unknown>>): Promise<WasmInstance>;
  Module: new (bytes: Uint8Array) => WasmModule;
  Memory: new (...args: never[]) => WasmMemory;
  Global: new (...args: never[]) => WasmGlobal;
}

export const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
