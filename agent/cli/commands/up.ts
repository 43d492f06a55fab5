import type { Command } from '../command.ts';
import { UsageError } from '../command.ts';
import { commonOptions, renderHelp } from '../config.ts';

const command: Command = {
  name: 'up',
  summary: 'Run everything on this host',
  help: renderHelp(
    'riptide up [flags]',
    'Runs the agent, the local object store, the function runtime, embedded ClickHouse (chDB) and the\nquery API + UI on http://127.0.0.1:8686, on embedded defaults.',
    commonOptions,
  ),
  async run() {
    throw new UsageError('`riptide up` is not assembled yet in this build; run `riptide agent --output -` to see capture');
  },
};

export default command;
