#!/usr/bin/env node
// `npx nestjs-checkpoint <command>`: the operator's command line, on DATABASE_URL. It boots a
// small Nest application context (cli.context.ts) and calls the library's services, so that it
// checks, reads and says what an application would.
import {
  CheckpointConfigError,
  CheckpointEpochMovedError,
  CheckpointLeaseConflictError,
  CheckpointStoreError,
  CheckpointValidationError,
} from '../checkpoint.errors.js';
import { CheckpointRedriveError } from '../items/items.errors.js';
import { CheckpointRunNotFoundError } from '../runs/runs.errors.js';
import { CliUsageError, parseCli, type CliArgs } from './cli.args.js';
import { CliNotFoundError, CliRefusedError } from './cli.commands.js';
import { cliMessages } from './cli.messages.js';

/** Exit codes: 0 done, 1 refused (nothing changed), 2 bad arguments, 3 not found, 4 database. */
export const EXIT = { done: 0, refused: 1, usage: 2, notFound: 3, database: 4 } as const;

/** The exit code of an error, and what to say about it. */
function failure(
  error: unknown,
  schema: string,
  bossSchema: string,
): { code: number; message: string } {
  const message = error instanceof Error ? error.message : String(error);
  if (
    error instanceof CliUsageError ||
    error instanceof CheckpointValidationError ||
    error instanceof CheckpointConfigError
  ) {
    return { code: EXIT.usage, message };
  }
  if (error instanceof CliNotFoundError || error instanceof CheckpointRunNotFoundError) {
    return { code: EXIT.notFound, message };
  }
  if (
    error instanceof CliRefusedError ||
    error instanceof CheckpointRedriveError ||
    error instanceof CheckpointEpochMovedError ||
    error instanceof CheckpointLeaseConflictError
  ) {
    return { code: EXIT.refused, message };
  }
  if (/^pg-boss (is not installed|database requires migrations)/.test(message)) {
    return { code: EXIT.database, message: cliMessages.noBoss(bossSchema, message) };
  }
  if (/relation "[^"]*" does not exist/.test(message)) {
    return { code: EXIT.database, message: cliMessages.noTables(schema) };
  }
  if (error instanceof CheckpointStoreError) return { code: EXIT.database, message };
  return { code: EXIT.database, message: cliMessages.unreachable(message) };
}

/** Runs one command line; returns its exit code. Output on stdout, problems on stderr. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let args: CliArgs | 'help';
  try {
    args = parseCli(argv, env);
  } catch (error) {
    process.stderr.write(`nestjs-checkpoint: ${failure(error, '', '').message}\n`);
    return EXIT.usage;
  }
  if (args === 'help') {
    process.stdout.write(`${cliMessages.usage()}\n`);
    return EXIT.done;
  }
  const url = env.DATABASE_URL;
  if (url === undefined || url === '') {
    process.stderr.write(`nestjs-checkpoint: ${cliMessages.noDatabaseUrl()}\n`);
    return EXIT.usage;
  }
  try {
    const { execute } = await import('./cli.context.js');
    const result = await execute(args, url);
    process.stdout.write(
      args.json ? `${JSON.stringify(result.value, null, 2)}\n` : `${result.lines.join('\n')}\n`,
    );
    return EXIT.done;
  } catch (error) {
    const { code, message } = failure(error, args.schema, args.bossSchema);
    process.stderr.write(`nestjs-checkpoint: ${message}\n`);
    return code;
  }
}

const code = await main(process.argv.slice(2), process.env);
// Written output is flushed before the exit; nothing of the context is left to wait for.
process.stdout.write('', () => process.exit(code));
