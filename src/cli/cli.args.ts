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
  /** pg-boss's schema: commands on runs read and cancel the run's jobs there. */
  bossSchema: string;
  json: boolean;
  state: string | undefined;
  queue: string | undefined;
  limit: number | undefined;
  after: string | undefined;
  to: number | undefined;
  epoch: number | undefined;
  /** `redrive <key> --items 3,7`: only these items of the key's ledger. */
  items: number[] | undefined;
  olderThan: { days?: number; hours?: number; minutes?: number; seconds?: number } | undefined;
}

const OPTIONS = {
  schema: { type: 'string' },
  'boss-schema': { type: 'string' },
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
  items: { type: 'string' },
  'older-than': { type: 'string' },
} as const;

/** Options every command takes. */
const GLOBAL = ['schema', 'boss-schema', 'json', 'help'];

/** pg-boss's own rule for its schema name (it is written unquoted in pg-boss's SQL). */
const BOSS_SCHEMA = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Which options each command takes (besides the GLOBAL ones). */
const ALLOWED: Record<Command, readonly string[]> = {
  list: ['runs', 'state', 'queue', 'limit', 'after'],
  show: ['run'],
  pause: ['run'],
  resume: ['run'],
  cancel: ['run'],
  rewind: ['to', 'epoch'],
  redrive: ['run', 'items'],
  purge: ['older-than', 'state'],
  migrate: [],
};

/** pg-boss's default schema. */
const DEFAULT_BOSS_SCHEMA = 'pgboss';

/**
 * Whether the command needs the application's pg-boss: a run's state reads its chunk jobs (a run
 * is failed only when none will run again), a run's cancel cancels them, and a redrive sends a
 * settled job again.
 */
export function needsBoss(args: CliArgs): boolean {
  return args.run !== null || (args.command === 'list' && args.runs) || args.command === 'redrive';
}

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
    if (GLOBAL.includes(option)) continue;
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
  if (values.items !== undefined && run !== null) throw new CliUsageError(cliMessages.itemsOfKey());
  if (command === 'purge' && values['older-than'] === undefined) {
    throw new CliUsageError(cliMessages.purgeNeeds());
  }
  const bossSchema = values['boss-schema'] ?? env.CHECKPOINT_BOSS_SCHEMA ?? DEFAULT_BOSS_SCHEMA;
  if (!BOSS_SCHEMA.test(bossSchema)) throw new CliUsageError(cliMessages.badBossSchema(bossSchema));
  return {
    command,
    key: takesKey && run === null ? (rest[0] ?? null) : null,
    run,
    runs: values.runs === true,
    schema: values.schema ?? env.CHECKPOINT_SCHEMA ?? DEFAULT_SCHEMA,
    bossSchema,
    json: values.json === true,
    state: values.state,
    queue: values.queue,
    limit: numberOf('limit', values.limit),
    after: values.after,
    to: numberOf('to', values.to),
    epoch: numberOf('epoch', values.epoch),
    items: values.items === undefined ? undefined : itemsOf(values.items),
    olderThan: values['older-than'] === undefined ? undefined : ageOf(values['older-than']),
  };
}

/** A number option: digits as given (the library checks the range); anything else refused. */
function numberOf(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) throw new CliUsageError(cliMessages.notANumber(option, value));
  return Number(value);
}

/** `3,7,12`: item indexes (the library checks them). */
function itemsOf(value: string): number[] {
  if (!/^\d+(,\d+)*$/.test(value)) throw new CliUsageError(cliMessages.badItems(value));
  return value.split(',').map(Number);
}

const UNITS = { d: 'days', h: 'hours', m: 'minutes', s: 'seconds' } as const;

/** `30d`, `12h`, `15m`, `45s`: the age `purge()` takes. */
function ageOf(value: string): NonNullable<CliArgs['olderThan']> {
  const match = /^(\d+)([dhms])$/.exec(value);
  if (match === null) throw new CliUsageError(cliMessages.badAge(value));
  return { [UNITS[match[2] as keyof typeof UNITS]]: Number(match[1]) };
}
