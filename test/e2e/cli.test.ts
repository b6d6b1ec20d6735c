// The operator's command line, run as an operator runs it (`node dist/cli/main.js`, here the
// same file compiled to build/) against real PostgreSQL: each command, its --json, its exit code,
// and bad arguments (exit code 2 and the library's message on stderr, nothing on stdout).
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { INestApplicationContext } from '@nestjs/common';
import type { PgBoss } from 'pg-boss';
import {
  CHECKPOINT_BOSS,
  CheckpointConfigError,
  CheckpointRuns,
  CheckpointService,
  checkpointMigrations,
  chunkJobId,
  FailedItemsService,
} from '../../src/index.js';
import { MAX_KEY_LENGTH } from '../../src/checkpoint.constants.js';
import { COMMANDS } from '../../src/cli/cli.args.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));
const schema = uniqueSchema('cli');
const bossSchema = `${schema}_boss`;
const fresh = uniqueSchema('cli_new');
let app: INestApplicationContext;
let service: CheckpointService;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the command line with DATABASE_URL and the test's schema (env overrides them). */
function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        env: {
          ...process.env,
          DATABASE_URL,
          CHECKPOINT_SCHEMA: schema,
          CHECKPOINT_BOSS_SCHEMA: bossSchema,
          ...env,
        },
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The command's --json answer, after checking that it succeeded. */
async function json<T>(args: string[]): Promise<T> {
  const outcome = await cli([...args, '--json']);
  assert.equal(outcome.code, 0, `${args.join(' ')}: ${outcome.stderr}`);
  return JSON.parse(outcome.stdout) as T;
}

/** A command that must fail with `code`, say `message` on stderr and print nothing on stdout. */
async function refused(args: string[], code: number, message: string | RegExp, env = {}) {
  const outcome = await cli(args, env);
  assert.equal(outcome.code, code, `${args.join(' ')}: ${outcome.stderr}`);
  if (typeof message === 'string') assert.ok(outcome.stderr.includes(message), outcome.stderr);
  else assert.match(outcome.stderr, message);
  assert.equal(outcome.stdout, '', `${args.join(' ')} printed nothing`);
}

/** A key left at `at` of `total` items, released (no attempt holds it); returns its epoch. */
async function seed(key: string, at: number, total = 100): Promise<number> {
  const claim = await service.claim(key, { totalItems: total });
  await service.advance(key, claim.epoch, { currentIndex: at, processedBatches: 1 });
  await service.release(key, claim.epoch);
  return claim.epoch;
}

async function row(key: string) {
  const [found] = await sql<{
    state: string;
    control: string | null;
    current_index: string;
    redrive_requested_at: Date | null;
  }>(
    `SELECT state, control, current_index, redrive_requested_at FROM "${schema}".checkpoint WHERE key = $1`,
    [key],
  );
  return found;
}

before(async () => {
  // The application's pg-boss (its schema beside the test's): commands on runs use it.
  app = await createTestApp({
    schema,
    checkpoint: { boss: { connectionString: DATABASE_URL, schema: bossSchema, max: 2 } },
  });
  service = app.get(CheckpointService);
});

after(async () => {
  await app.close();
  await dropSchema(schema);
  await dropSchema(bossSchema);
  await dropSchema(fresh);
});

describe('nestjs-checkpoint (the command line)', () => {
  it("is the package's bin, and --help says every command and the exit codes", async () => {
    const manifest = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as {
      bin: Record<string, string>;
    };
    assert.deepEqual(manifest.bin, { 'nestjs-checkpoint': './dist/cli/main.js' });
    assert.ok(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n'));
    const help = await cli(['--help']);
    assert.equal(help.code, 0);
    for (const command of COMMANDS) {
      assert.ok(help.stdout.includes(`  ${command}`), command);
    }
    assert.ok(help.stdout.includes('Exit codes: 0 done, 1 refused'));
  });

  it('bad arguments: exit code 2, the reason on stderr, nothing done', async () => {
    await refused(['launch'], 2, 'unknown command "launch"');
    await refused(['list', '--colour', 'red'], 2, "Unknown option '--colour'");
    await refused(['show', 'k', '--to', '3'], 2, 'option --to is not an option of show');
    await refused(['pause'], 2, 'pause needs one key, or --run <id>');
    await refused(['pause', 'a', 'b'], 2, 'pause needs one key, or --run <id>');
    await refused(['cancel', 'a', '--run', 'r'], 2, 'cancel needs one key, or --run <id>');
    await refused(['rewind', 'k', '--to', '1'], 2, 'rewind needs --to <item> and --epoch <epoch>');
    await refused(['rewind', 'k', '--to', 'x', '--epoch', '1'], 2, '--to must be a whole number');
    await refused(['purge'], 2, 'purge needs --older-than');
    await refused(['purge', '--older-than', '5y'], 2, '--older-than must be a number and a unit');
    await refused(['list', 'extra'], 2, 'list takes no key');
    await refused(['list'], 2, 'DATABASE_URL is not set', { DATABASE_URL: '' });
    await refused(['list', '--runs', '--boss-schema', 'pg-boss'], 2, '--boss-schema must be');
    await refused(['redrive', 'k', '--items', '3,x'], 2, '--items must be item indexes');
    await refused(['redrive', '--run', 'r', '--items', '3'], 2, "--items names items of one key's");
    await refused(['show', 'k', '--items', '3'], 2, 'option --items is not an option of show');
  });

  it('bad values reach the library and come back with its message (exit code 2)', async () => {
    await refused(['list', '--state', 'done'], 2, /state must be one of .*completed/);
    await refused(['list', '--limit', '-1'], 2, 'limit');
    await refused(['list', '--after', 'forged'], 2, 'after must be the `after` token');
    await refused(
      ['show', 'k'.repeat(MAX_KEY_LENGTH + 1)],
      2,
      'checkpoint key must be a non-empty string',
    );
    await refused(['list', '--schema', 'Bad-Name'], 2, 'schema');
  });

  it('migrate applies the migrations once; a schema without tables and an unreachable database exit 4', async () => {
    const applied = await json<{ applied: number[] }>(['migrate', '--schema', fresh]);
    assert.deepEqual(
      applied.applied,
      checkpointMigrations.map((migration) => migration.version),
    );
    const again = await cli(['migrate', '--schema', fresh]);
    assert.equal(again.code, 0);
    assert.equal(again.stdout.trim(), 'the schema is up to date: no migration to apply');
    await refused(
      ['list', '--schema', 'no_such_schema'],
      4,
      'schema "no_such_schema" has no checkpoint tables: run "nestjs-checkpoint migrate"',
    );
    const port = await closedPort();
    await refused(['list'], 4, 'the database at DATABASE_URL is unreachable', {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/test`,
    });
  });

  it('list and show: keys newest first, paged, in a state; a key with its ledger; unknown ones exit 3', async () => {
    await seed('cli/old', 10);
    const done = await service.claim('cli/done', { totalItems: 5 });
    await service.complete('cli/done', done.epoch, 5);
    await seed('cli/half', 50);
    const all = await json<{ items: Array<{ key: string }> }>(['list']);
    assert.deepEqual(
      all.items.map((item) => item.key),
      ['cli/half', 'cli/done', 'cli/old'],
    );
    const completed = await json<{ items: Array<{ key: string }> }>([
      'list',
      '--state',
      'completed',
    ]);
    assert.deepEqual(
      completed.items.map((item) => item.key),
      ['cli/done'],
    );
    const first = await json<{ items: Array<{ key: string }>; more: boolean; after: string }>([
      'list',
      '--limit',
      '1',
    ]);
    assert.deepEqual([first.items.map((item) => item.key), first.more], [['cli/half'], true]);
    const second = await json<{ items: Array<{ key: string }> }>([
      'list',
      '--limit',
      '1',
      '--after',
      first.after,
    ]);
    assert.deepEqual(
      second.items.map((item) => item.key),
      ['cli/done'],
    );
    const human = await cli(['list']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^KEY\s+STATE\s+ITEMS/);
    assert.match(human.stdout, /cli\/half\s+released\s+50\/100/);

    const shown = await json<{
      key: { key: string; currentIndex: number; state: string };
      failedItems: { items: unknown[] };
    }>(['show', 'cli/half']);
    assert.deepEqual(
      [shown.key.key, shown.key.currentIndex, shown.key.state],
      ['cli/half', 50, 'released'],
    );
    assert.deepEqual(shown.failedItems.items, []);
    await refused(['show', 'cli/none'], 3, 'no checkpoint key "cli/none"');
    await refused(['show', '--run', 'no-run'], 3, 'no run "no-run"');
  });

  it('pause, resume and cancel a key: done (0) or refused with the reason (1)', async () => {
    const running = await service.claim('cli/running', { totalItems: 10 });
    const paused = await json<{ control: string | null; state: string }>(['pause', 'cli/running']);
    assert.equal(paused.control, 'pause');
    assert.equal((await row('cli/running'))?.control, 'pause');
    const resumed = await json<{ control: string | null }>(['resume', 'cli/running']);
    assert.equal(resumed.control, null);
    await refused(['pause', 'cli/done'], 1, 'cannot pause: it is already completed');
    await refused(['resume', 'cli/half'], 1, 'nothing to resume: it is released and not paused');
    const cancelled = await cli(['cancel', 'cli/old']);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, /^cancel: cli\/old is cancelled/);
    assert.equal((await row('cli/old'))?.state, 'cancelled');
    await refused(['cancel', 'cli/old'], 1, 'cannot cancel: it is already cancelled');
    await service.release('cli/running', running.epoch);
  });

  it('rewind: with the epoch read, once; a moved epoch is refused (1), a forward rewind is bad input (2)', async () => {
    const epoch = await seed('cli/rewind', 60);
    const rewound = await cli(['rewind', 'cli/rewind', '--to', '10', '--epoch', String(epoch)]);
    assert.equal(rewound.code, 0, rewound.stderr);
    assert.match(rewound.stdout, /rewound "cli\/rewind" to item 10; its epoch is now \d+/);
    assert.equal((await row('cli/rewind'))?.current_index, '10');
    await refused(['rewind', 'cli/rewind', '--to', '0', '--epoch', String(epoch)], 1, 'epoch');
    assert.equal(
      (await row('cli/rewind'))?.current_index,
      '10',
      'the refused rewind changed nothing',
    );
    const now = (await json<{ key: { epoch: number } }>(['show', 'cli/rewind'])).key.epoch;
    await refused(
      ['rewind', 'cli/rewind', '--to', '99', '--epoch', String(now)],
      2,
      'cannot rewind',
    );
    await refused(['rewind', 'cli/none', '--to', '0', '--epoch', '1'], 3, 'no checkpoint key');
  });

  it('redrive a key and a run; runs listed and shown; a run paused and cancelled; purge', async () => {
    // A key with one item in its failed-item ledger.
    const claim = await service.claim('cli/run:a', { totalItems: 20 });
    await app
      .get(FailedItemsService)
      .skip('cli/run:a', claim.epoch, 7, { id: 7 }, new Error('refused'), {
        currentIndex: 8,
        currentBatchIndex: null,
        processedBatches: null,
        cursor: undefined,
      });
    await service.release('cli/run:a', claim.epoch);
    await seed('cli/run:b', 5, 20);
    // A run of those two keys, as CheckpointRuns.start() writes it (run row, run_id, run_chunk).
    await sql(
      `INSERT INTO "${schema}".run (id, queue, state, mode, total_items, chunk_count, chunk_size)
       VALUES ('cli-run', 'cli', 'running', 'queued', 40, 2, 20)`,
    );
    await sql(
      `UPDATE "${schema}".checkpoint SET run_id = 'cli-run', run_chunk = CASE key WHEN 'cli/run:a' THEN 0 ELSE 1 END WHERE key LIKE 'cli/run:%'`,
    );

    const listed = await json<{ items: Array<{ id: string }> }>(['list', '--runs']);
    assert.deepEqual(
      listed.items.map((run) => run.id),
      ['cli-run'],
    );
    const shown = await json<{
      run: { id: string; skippedItems: number };
      chunks: Array<{ key: string }>;
    }>(['show', '--run', 'cli-run']);
    assert.equal(shown.run.skippedItems, 1);
    assert.deepEqual(
      shown.chunks.map((chunk) => chunk.key),
      ['cli/run:a', 'cli/run:b'],
    );

    const redriven = await json<{ keys: string[]; items: number }>(['redrive', 'cli/run:a']);
    assert.deepEqual(redriven, { keys: ['cli/run:a'], items: 1, sent: [] });
    assert.notEqual((await row('cli/run:a'))?.redrive_requested_at, null);
    await refused(
      ['redrive', 'cli/half'],
      1,
      'checkpoint key "cli/half" has no failed items to redrive',
    );
    const run = await json<{ keys: string[]; items: number }>(['redrive', '--run', 'cli-run']);
    assert.deepEqual(run, { keys: ['cli/run:a'], items: 1, sent: [] });
    await refused(['redrive', '--run', 'no-run'], 3, 'no run "no-run"');

    const paused = await cli(['pause', '--run', 'cli-run']);
    assert.equal(paused.code, 0, paused.stderr);
    assert.deepEqual(
      (
        await sql<{ state: string }>(
          `SELECT DISTINCT state FROM "${schema}".checkpoint WHERE run_id = 'cli-run'`,
        )
      ).map((r) => r.state),
      ['paused'],
    );
    const cancelled = await json<{ state: string }>(['cancel', '--run', 'cli-run']);
    assert.equal(cancelled.state, 'cancelled');
    await refused(['cancel', '--run', 'cli-run'], 1, 'cannot cancel: it is already cancelled');

    await sql(
      `UPDATE "${schema}".checkpoint SET created_at = now() - interval '3 days', updated_at = now() - interval '2 days' WHERE key = 'cli/done'`,
    );
    const purged = await json<{ keys: number }>(['purge', '--older-than', '1d']);
    assert.equal(purged.keys, 1);
    assert.equal(await row('cli/done'), undefined);
    assert.equal((await json<{ keys: number }>(['purge', '--older-than', '1d'])).keys, 0);
  });

  it("cancel --run cancels the run's pg-boss chunk jobs too, as CheckpointRuns.cancel does", async () => {
    const boss = app.get<PgBoss>(CHECKPOINT_BOSS);
    const runs = app.get(CheckpointRuns);
    const queue = 'cli-chunks';
    await boss.createQueue(queue);
    // No worker on the queue: the chunk jobs wait in pg-boss, `created`.
    const items = Array.from({ length: 30 }, (_, i) => i);
    await runs.start(queue, { id: 'cli-jobs', items, chunkSize: 10 });
    await runs.start(queue, { id: 'cli-kept', items, chunkSize: 15 });
    const jobs = (id: string, chunks: number) =>
      sql<{ state: string }>(
        `SELECT state FROM "${bossSchema}".job WHERE name = $1 AND id = ANY($2::uuid[]) ORDER BY id`,
        [queue, Array.from({ length: chunks }, (_, i) => chunkJobId(id, i))],
      ).then((rows) => rows.map((job) => job.state));
    assert.deepEqual(await jobs('cli-jobs', 3), ['created', 'created', 'created']);

    const cancelled = await cli(['cancel', '--run', 'cli-jobs', '--json']);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    const run = JSON.parse(cancelled.stdout) as {
      id: string;
      state: string;
      chunks: { cancelled: number };
    };
    assert.deepEqual([run.id, run.state, run.chunks.cancelled], ['cli-jobs', 'cancelled', 3]);
    assert.deepEqual(await jobs('cli-jobs', 3), ['cancelled', 'cancelled', 'cancelled']);
    assert.deepEqual(
      (
        await sql<{ state: string }>(
          `SELECT DISTINCT state FROM "${schema}".checkpoint WHERE run_id = 'cli-jobs'`,
        )
      ).map((chunk) => chunk.state),
      ['cancelled'],
    );
    await refused(['cancel', '--run', 'cli-jobs'], 1, 'cannot cancel: it is already cancelled');

    // Where the application's pg-boss is not, nothing is cancelled (a half cancel would leave
    // the jobs queued): exit 4, and the schema to name.
    await refused(
      ['cancel', '--run', 'cli-kept', '--boss-schema', 'no_boss_here'],
      4,
      `commands on runs need the application's pg-boss, and schema "no_boss_here" has none`,
    );
    // So does the library where its module has no pg-boss to cancel the jobs with.
    const bossless = await createTestApp({ schema });
    try {
      await assert.rejects(
        bossless.get(CheckpointRuns).control('cli-kept', 'cancel'),
        (error: unknown) =>
          error instanceof CheckpointConfigError &&
          error.message.includes('run "cli-kept" has 2 unfinished chunk job(s) in pg-boss'),
      );
    } finally {
      await bossless.close();
    }
    assert.deepEqual(await jobs('cli-kept', 2), ['created', 'created']);
    assert.equal((await runs.get('cli-kept'))?.state, 'created');

    const human = await cli(['cancel', '--run', 'cli-kept']);
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout, 'cancel: run cli-kept is cancelled\n');
    assert.deepEqual(await jobs('cli-kept', 2), ['cancelled', 'cancelled']);
  });

  it('redrive --items runs only the chosen items, and sends the settled job again in the same transaction', async () => {
    const boss = app.get<PgBoss>(CHECKPOINT_BOSS);
    const queue = 'cli-redrive';
    await boss.createQueue(queue);
    // A pg-boss job whose key completed with items 3 and 7 in its ledger; the job completed too.
    const ledgered = async (jobId: string) => {
      const name = `${queue}:${jobId}`;
      const claim = await service.claim(name, { totalItems: 10, queue, jobId });
      for (const item of [3, 7]) {
        await app
          .get(FailedItemsService)
          .skip(name, claim.epoch, item, { id: item }, new Error('refused'), {
            currentIndex: item + 1,
            currentBatchIndex: null,
            processedBatches: null,
            cursor: undefined,
          });
      }
      await service.complete(name, claim.epoch);
      return name;
    };
    const id = await boss.send(queue, { items: 10 });
    assert.ok(id);
    const [job] = await boss.fetch(queue);
    assert.equal(job?.id, id);
    await boss.complete(queue, id);
    const name = await ledgered(id);

    const redriven = await json<{ keys: string[]; items: number; sent: string[] }>([
      'redrive',
      name,
      '--items',
      '7',
    ]);
    assert.deepEqual(redriven, { keys: [name], items: 1, sent: [name] });
    assert.equal((await boss.getJobById(queue, id))?.state, 'created', 'the job was sent again');
    const [marked] = await sql<{ redrive_items: string[] | null }>(
      `SELECT redrive_items FROM "${schema}".checkpoint WHERE key = $1`,
      [name],
    );
    assert.deepEqual(marked?.redrive_items?.map(Number), [7], 'only item 7 runs again');
    await refused(
      ['redrive', name, '--items', '5'],
      3,
      `items 5 are not in the failed-item ledger of "${name}"`,
    );

    // A job gone from pg-boss cannot be sent again: refused (1), nothing marked.
    const gone = await ledgered('00000000-0000-4000-8000-000000000001');
    await refused(['redrive', gone, '--items', '3'], 1, 'redrive');
    assert.equal((await row(gone))?.redrive_requested_at, null);
  });
});

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}
