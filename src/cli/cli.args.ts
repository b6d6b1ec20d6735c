// The command line's arguments: one command, its positionals and options, checked before any
// connection is made. Values go to the library as given (numbers as numbers): the library's own
// checks answer a bad value, with its messages.
import { parseArgs } from 'node:util';
import { DEFAULT_SCHEMA } from '../checkpoint.constants.js';
import { cliMessages } from './cli.messages.js';

export const COMMANDS = [
  'list',
  'show',
  'pause',
  'resume',
  'cancel',
  'rewind',
  'redrive',
  'purge',
  'migrate',
] as const;
export type Command = (typeof COMMANDS)[number];

/** A command line that cannot be run as given (exit code 2, the message on stderr). */
export class CliUsageError extends Error {
  override name = 'CliUsageError';
}

export interface CliArgs {
  command: Command;
  /** The key named (commands on one key), or null. */
  key: string | null;
  /** `--run <id>`: the command acts on a run (its chunks) instead of a key. */
  run: string | null;
  /** `list --runs`: runs instead of keys. */
  runs: boolean;
  schema: string;
  json: boolean;
  state: string | undefined;
  queue: string | undefined;
  limit: number | undefined;
  after: string | undefined;
  to: number | undefined;
  epoch: number | undefined;
  olderThan: { days?: number; hours?: number; minutes?: number; seconds?: number } | undefined;
}

const OPTIONS = {
  schema: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  run: { type: 'string' },
  runs: { type: 'boolean' },
  state: { type: 'string' },
  queue: { type: 'string' },
  limit: { type: 'string' },
  after: { type: 'string' },
  to: { type: 'string' },
  epoch: { type: 'string' },
  'older-than': { type: 'string' },
} as const;

/** Which options each command takes (besides --schema, --json and --help). */
const ALLOWED: Record<Command, readonly string[]> = {
  list: ['runs', 'state', 'queue', 'limit', 'after'],
  show: ['run'],
  pause: ['run'],
  resume: ['run'],
  cancel: ['run'],
  rewind: ['to', 'epoch'],
  redrive: ['run'],
  purge: ['older-than', 'state'],
  migrate: [],
};

/** `--help`, or the parsed command line. Throws CliUsageError for what it cannot run. */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliArgs | 'help' {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new CliUsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help === true || positionals.length === 0) return 'help';
  const [name, ...rest] = positionals;
  const command = COMMANDS.find((known) => known === name);
  if (command === undefined) throw new CliUsageError(cliMessages.unknownCommand(String(name)));
  for (const option of Object.keys(values)) {
    if (['schema', 'json', 'help'].includes(option)) continue;
    if (!ALLOWED[command].includes(option)) {
      throw new CliUsageError(cliMessages.optionNotFor(option, command));
    }
  }
  const run = values.run ?? null;
  const takesKey = !['list', 'purge', 'migrate'].includes(command);
  if (!takesKey && rest.length > 0) throw new CliUsageError(cliMessages.noArgument(command));
  if (takesKey) {
    if (run !== null && rest.length > 0) throw new CliUsageError(cliMessages.keyOrRun(command));
    if (run === null && rest.length !== 1) {
      throw new CliUsageError(
        ALLOWED[command].includes('run')
          ? cliMessages.keyOrRun(command)
          : cliMessages.oneKey(command),
      );
    }
  }
  if (command === 'rewind' && (values.to === undefined || values.epoch === undefined)) {
    throw new CliUsageError(cliMessages.rewindNeeds());
  }
  if (command === 'purge' && values['older-than'] === undefined) {
    throw new CliUsageError(cliMessages.purgeNeeds());
  }
  return {
    command,
    key: takesKey && run === null ? (rest[0] ?? null) : null,
    run,
    runs: values.runs === true,
    schema: values.schema ?? env.CHECKPOINT_SCHEMA ?? DEFAULT_SCHEMA,
    json: values.json === true,
    state: values.state,
    queue: values.queue,
    limit: numberOf('limit', values.limit),
    after: values.after,
    to: numberOf('to', values.to),
    epoch: numberOf('epoch', values.epoch),
    olderThan: values['older-than'] === undefined ? undefined : ageOf(values['older-than']),
  };
}

/** A number option: digits as given (the library checks the range); anything else refused. */
function numberOf(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) throw new CliUsageError(cliMessages.notANumber(option, value));
  return Number(value);
}

const UNITS = { d: 'days', h: 'hours', m: 'minutes', s: 'seconds' } as const;

/** `30d`, `12h`, `15m`, `45s`: the age `purge()` takes. */
function ageOf(value: string): NonNullable<CliArgs['olderThan']> {
  const match = /^(\d+)([dhms])$/.exec(value);
  if (match === null) throw new CliUsageError(cliMessages.badAge(value));
  return { [UNITS[match[2] as keyof typeof UNITS]]: Number(match[1]) };
}
