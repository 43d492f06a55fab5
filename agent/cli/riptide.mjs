#!/usr/bin/env node
// The `riptide` command. TypeScript sources run through tsx's loader, so `npx riptide` works right
// after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv.slice(2));
