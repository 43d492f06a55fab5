#!/usr/bin/env node
// The `riptide` command. TypeScript sources run through tsx's loader, so `npx riptide` works right
// after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
const { main, reportFailure } = await import('./main.ts');
const name = process.argv[2] && !process.argv[2].startsWith('-') ? process.argv[2] : undefined;

// `riptide … | head -1`: the reader is gone. Stop quietly with status 0, like other Unix tools
// (a command that writes stdout itself, the agent's --output -, adds its own listener to stop cleanly).
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') {
    if (process.stdout.listenerCount('error') === 1) process.exit(0);
    return;
  }
  process.exit(reportFailure(name, err));
});
// Whatever escapes a command later (a server's background error) is still one line and an exit code.
const fail = (err) => process.exit(reportFailure(name, err));
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

process.exitCode = await main(process.argv.slice(2));
