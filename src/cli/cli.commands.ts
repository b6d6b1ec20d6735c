// What each command does, through the library's own services (CheckpointService, CheckpointRuns,
// FailedItemsService): the same checks, the same statements and the same messages as in an
// application. Each returns what it prints: a value for --json and the lines for a person.
import { CHECKPOINT_STATES, type CheckpointState, type RunState } from '../checkpoint.constants.js';
import type { ControlAction } from '../checkpoint.interfaces.js';
import type { CheckpointService } from '../checkpoint.service.js';
import type { RedriveRequest } from '../items/failed-item.interface.js';
import type { FailedItemsService } from '../items/failed-items.service.js';
import { httpMessages } from '../http/checkpoint-http.messages.js';
import type { CheckpointRuns } from '../runs/runs.service.js';
import type { CliArgs } from './cli.args.js';
import { cliMessages } from './cli.messages.js';

/** The key or run named does not exist (exit code 3). */
export class CliNotFoundError extends Error {
  override name = 'CliNotFoundError';
}

/** The command was understood but changed nothing (exit code 1), with the reason. */
export class CliRefusedError extends Error {
  override name = 'CliRefusedError';
}

export interface CliServices {
  checkpoints: CheckpointService;
  runs: CheckpointRuns;
  failedItems: FailedItemsService;
}

/** What a command prints: `value` with --json, `lines` otherwise. */
export interface CliResult {
  value: unknown;
  lines: string[];
}

const done = (value: unknown, ...lines: string[]): CliResult => ({ value, lines });

export async function runCommand(args: CliArgs, services: CliServices): Promise<CliResult> {
  switch (args.command) {
    case 'list':
      return args.runs ? listRuns(args, services) : listKeys(args, services);
    case 'show':
      return args.run !== null ? showRun(args.run, services) : showKey(key(args), services);
    case 'pause':
    case 'resume':
    case 'cancel':
      return args.run !== null
        ? controlRun(args.run, args.command, services)
        : controlKey(key(args), args.command, services);
    case 'rewind':
      return rewind(key(args), args, services);
    case 'redrive':
      return redrive(args, services);
    case 'purge':
      return purge(args, services);
    case 'migrate':
      throw new Error('migrate runs without the module'); // main.ts runs it on its own
  }
}

function key(args: CliArgs): string {
  return args.key as string; // parseCli checked that a command on a key has one
}

async function listKeys(args: CliArgs, { checkpoints }: CliServices): Promise<CliResult> {
  const page = await checkpoints.list({
    state: args.state as CheckpointState | undefined,
    limit: args.limit,
    after: args.after,
  });
  const rows = page.items.map((record) => [
    record.key,
    record.state + (record.control === null ? '' : ` (${record.control} requested)`),
    `${record.currentIndex}/${record.totalItems ?? '?'}`,
    String(record.attempt),
    String(record.skippedItems),
    record.lastUpdate.toISOString(),
  ]);
  return done(
    page,
    ...table(['KEY', 'STATE', 'ITEMS', 'ATTEMPT', 'SKIPPED', 'UPDATED'], rows),
    ...more(page),
  );
}

async function listRuns(args: CliArgs, { runs }: CliServices): Promise<CliResult> {
  const page = await runs.list({
    state: args.state as RunState | undefined,
    queue: args.queue,
    limit: args.limit,
    after: args.after,
  });
  const rows = page.items.map((run) => [
    run.id,
    run.queue,
    run.state,
    `${run.processedItems}/${run.totalItems}`,
    `${run.chunks.completed}/${run.chunkCount}`,
    String(run.skippedItems),
    run.createdAt.toISOString(),
  ]);
  return done(
    page,
    ...table(['RUN', 'QUEUE', 'STATE', 'ITEMS', 'CHUNKS DONE', 'SKIPPED', 'CREATED'], rows),
    ...more(page),
  );
}

async function showKey(name: string, services: CliServices): Promise<CliResult> {
  const record = await found(name, services);
  const failedItems = await services.failedItems.list({ key: name, limit: 20 });
  const error = record.error as { name?: string; message?: string } | null;
  return done(
    { key: record, failedItems },
    ...fields([
      ['key', record.key],
      ['state', record.state + (record.control === null ? '' : ` (${record.control} requested)`)],
      ['epoch', String(record.epoch)],
      ['attempt', String(record.attempt)],
      ['items', `${record.currentIndex} of ${record.totalItems ?? 'unknown'}`],
      ['batches', `${record.processedBatches}`],
      [
        'skipped',
        `${record.skippedItems}${record.redriveRequestedAt !== null ? ' (redrive asked)' : ''}`,
      ],
      ['run', record.runId === null ? '-' : `${record.runId} chunk ${record.runChunk ?? '?'}`],
      ['queue', record.queue ?? '-'],
      ['job', record.jobId ?? '-'],
      ['owner', record.owner ?? '-'],
      ['error', error === null ? '-' : `${error.name ?? 'Error'}: ${error.message ?? ''}`],
      ['updated', record.lastUpdate.toISOString()],
    ]),
    ...(failedItems.items.length === 0
      ? []
      : [
          '',
          ...table(
            ['ITEM', 'ERROR', 'ATTEMPT', 'FAILED AT'],
            failedItems.items.map((item) => [
              String(item.itemIndex),
              `${item.errorClass}${item.errorCode === null ? '' : ` (${String(item.errorCode)})`}: ${item.errorMessage}`,
              String(item.attempt),
              item.failedAt.toISOString(),
            ]),
          ),
          ...(failedItems.more ? ['(more failed items follow)'] : []),
        ]),
  );
}

async function showRun(id: string, { runs }: CliServices): Promise<CliResult> {
  const run = await runs.get(id);
  if (run === null) throw new CliNotFoundError(httpMessages.noRun(id));
  const chunks = await runs.chunks(id);
  return done(
    { run, chunks },
    ...fields([
      ['run', run.id],
      ['queue', run.queue],
      ['state', run.state],
      ['items', `${run.processedItems} of ${run.totalItems} (${run.percentage}%)`],
      ['skipped', String(run.skippedItems)],
      ['chunks', `${run.chunks.completed} of ${run.chunkCount} completed`],
      ['created', run.createdAt.toISOString()],
      ['completed', run.completedAt === null ? '-' : run.completedAt.toISOString()],
    ]),
    '',
    ...table(
      ['CHUNK', 'KEY', 'STATE', 'ITEMS', 'ATTEMPT'],
      chunks.map((chunk) => [
        String(chunk.index),
        chunk.key,
        chunk.state,
        `${chunk.processedItems}/${chunk.totalItems ?? '?'}`,
        String(chunk.attempt),
      ]),
    ),
  );
}

async function controlKey(
  name: string,
  action: ControlAction,
  services: CliServices,
): Promise<CliResult> {
  const before = await found(name, services);
  if (!(await services.checkpoints.control(name, action)))
    throw new CliRefusedError(httpMessages.refusal(action, before.state, before.control));
  const after = await found(name, services);
  return done(after, cliMessages.controlled(action, `${name} is ${describeState(after)}`));
}

async function controlRun(
  id: string,
  action: ControlAction,
  { runs }: CliServices,
): Promise<CliResult> {
  const before = await runs.get(id);
  if (before === null) throw new CliNotFoundError(httpMessages.noRun(id));
  // As the HTTP module does it: a cancel reaches the run's pg-boss jobs too.
  if ((await runs.control(id, action)) === 0)
    throw new CliRefusedError(httpMessages.refusal(action, before.state, null));
  const after = await runs.get(id);
  return done(after, cliMessages.controlled(action, `run ${id} is ${after?.state ?? 'gone'}`));
}

async function rewind(name: string, args: CliArgs, services: CliServices): Promise<CliResult> {
  await found(name, services);
  const epoch = await services.checkpoints.rewind(name, args.to as number, {
    expectedEpoch: args.epoch as number,
  });
  return done(await found(name, services), cliMessages.rewound(name, args.to as number, epoch));
}

async function redrive(args: CliArgs, services: CliServices): Promise<CliResult> {
  const { failedItems } = services;
  if (args.run !== null) {
    if ((await services.runs.get(args.run)) === null) {
      throw new CliNotFoundError(httpMessages.noRun(args.run));
    }
    const request = await failedItems.redriveRun(args.run);
    if (request.items === 0) {
      throw new CliRefusedError(httpMessages.nothingToRedrive(`run ${JSON.stringify(args.run)}`));
    }
    return done(request, redriven(request));
  }
  const name = key(args);
  const record = await found(name, services);
  const items = args.items;
  const request = await failedItems.redrive(name, items === undefined ? {} : { items });
  if (request.items === 0) {
    if (record.state === CHECKPOINT_STATES.running) {
      throw new CliRefusedError(httpMessages.redriveRunning(name));
    }
    if (items !== undefined) throw new CliNotFoundError(httpMessages.notInLedger(name, items));
    throw new CliRefusedError(
      httpMessages.nothingToRedrive(`checkpoint key ${JSON.stringify(name)}`),
    );
  }
  return done(request, redriven(request));
}

function redriven(request: RedriveRequest): string {
  return cliMessages.redriven(request.items, request.keys.length, request.sent.length);
}

async function purge(args: CliArgs, { checkpoints }: CliServices): Promise<CliResult> {
  const keys = await checkpoints.purge({
    olderThan: args.olderThan ?? {},
    state: args.state as CheckpointState | undefined,
  });
  return done({ keys }, cliMessages.purged(keys));
}

async function found(name: string, { checkpoints }: CliServices) {
  const record = await checkpoints.find(name);
  if (record === null) throw new CliNotFoundError(httpMessages.noKey(name));
  return record;
}

function describeState(record: { state: string; control: string | null }): string {
  return record.state + (record.control === null ? '' : ` (${record.control} requested)`);
}

function more(page: { more: boolean; after: string | null }): string[] {
  return page.more && page.after !== null ? [`more: --after ${page.after}`] : [];
}

function fields(pairs: Array<[string, string]>): string[] {
  const width = Math.max(...pairs.map(([name]) => name.length));
  return pairs.map(([name, value]) => `${name.padEnd(width)}  ${value}`);
}

function table(head: string[], rows: string[][]): string[] {
  if (rows.length === 0) return ['(none)'];
  const widths = head.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)];
}
