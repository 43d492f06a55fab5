/**
 * The marketplace page (ui/index.html): one plain HTML file with its script inline, no build step,
 * reading the same API as the CLI (`/api/v1/marketplace/plugins…`).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function marketplaceHtml(): string {
  cached ??= readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'ui', 'index.html'), 'utf8');
  return cached;
}
