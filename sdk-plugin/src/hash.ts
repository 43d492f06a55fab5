import { createHash } from 'node:crypto';

/** Lower-case hex sha256, as in a manifest's `sha256`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
