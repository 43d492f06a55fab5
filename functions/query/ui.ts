/**
 * The web UI: one plain HTML page with its script inline (ui/index.html), no build step. It talks to
 * the same API as everyone else (`/api/v1/spans`, `/api/v1/traces/{id}`, `/api/v1/service-map`).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function uiHtml(): string {
  cached ??= readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'ui', 'index.html'), 'utf8');
  return cached;
}
