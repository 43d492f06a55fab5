/** Host-side entry of @riptide/sdk-plugin: ABI codec, manifest schema, sandbox and build. */
export * from './src/abi.ts';
export * from './src/manifest.ts';
export * from './src/sandbox.ts';
export { buildPlugin, BuildError } from './src/build.ts';
export type { BuildOptions, BuildResult } from './src/build.ts';
export { sha256Hex } from './src/hash.ts';
