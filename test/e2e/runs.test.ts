// Runs: one input split across workers. Real PostgreSQL, real pg-boss, real processes.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import { PgBoss } from 'pg-boss';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import {
  CHECKPOINT_BOSS,
  CheckpointRunConflictError,
  CheckpointRuns,
  CheckpointService,
  CheckpointValidationError,
  chunkJobId,
} from '../../src/index.js';
import { createRunTables, failOnce, RUN_QUEUE, RunJob } from '../fixtures/run-job.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import { Child } from '../support/process.js';
import { waitUntil } from '../support/wait.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const cleanups: Array<() => Promise<void>> = [];

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A schema with the effect tables, a pg-boss schema beside it, and worker processes on demand. */
async function setUp(prefix: string) {
  const schema = uniqueSchema(prefix);
  await sql(`CREATE SCHEMA "${schema}"`);
  for (const statement of createRunTables(schema)) await sql(statement);
  const workers = new Set<Child>();
  const startWorker = (env: Record<string, string> = {}) => {
    const child = Child.start('run-worker', { SCHEMA: schema, JOB_EVENTS: '1', ...env });
    workers.add(child);
    return child;
  };
  cleanups.push(async () => {
    await Promise.all([...workers].map((child) => child.kill('SIGKILL')));
    await dropSchema(schema);
    await dropSchema(`${schema}_boss`);
  });
  return { schema, startWorker, workers };
}

/** An in-process application: with `worker` it works the queue too. */
async function app(schema: string, worker: boolean, directThreshold?: number) {
  const application = await createTestApp({
    schema,
    providers: worker ? [RunJob] : [],
    checkpoint: {
      directThreshold,
      boss: {
        connectionString: DATABASE_URL,
        schema: `${schema}_boss`,
        max: 3,
        supervise: false,
      },
    },
  });
  cleanups.push(() => application.close());
  return { app: application, runs: application.get(CheckpointRuns) };
}

/** What the database holds of a run: run rows, chunk rows, pg-boss jobs. */
async function stored(schema: string, runId: string, chunks: number) {
  const ids = range(chunks).map((i) => chunkJobId(runId, i));
  const [row] = await sql<{ runs: number; chunks: number; jobs: number }>(
    `SELECT (SELECT count(*)::int FROM "${schema}".run WHERE id = $1) AS runs,
            (SELECT count(*)::int FROM "${schema}".checkpoint WHERE run_id = $1) AS chunks,
            (SELECT count(*)::int FROM "${schema}_boss".job WHERE id = ANY($2::uuid[])) AS jobs`,
    [runId, ids],
  );
  return row;
}

async function effects(schema: string, runId: string) {
  const [row] = await sql<{ rows: number; distinct: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct
       FROM "${schema}".run_effect WHERE run_id = $1`,
    [runId],
  );
  return row;
}

describe('runs', () => {
  it('direct mode: small inputs run inline in the caller, checkpointed; a failed one resumes', async () => {
    const { schema } = await setUp('rdirect');
    const { app: application, runs } = await app(schema, true, 200);

    const small = await runs.start(RUN_QUEUE, { id: 'small', items: range(30) });
    assert.equal(small.mode, 'direct');
    assert.equal(small.state, 'completed');
    assert.equal(small.created, true);
    assert.deepEqual(small.result, { chunk: 0, items: 30 });
    assert.deepEqual(await effects(schema, 'small'), { rows: 30, distinct: 30 });

    failOnce.set('direct-resume', 2);
    await assert.rejects(
      runs.start(RUN_QUEUE, { id: 'direct-resume', items: range(150) }),
      /boom at batch 2/,
    );
    assert.equal((await runs.get('direct-resume'))?.state, 'failed');
    const resumed = await runs.start(RUN_QUEUE, { id: 'direct-resume', items: range(150) });
    assert.equal(resumed.state, 'completed');
    assert.equal(resumed.created, false);
    const attempts = await sql<{ attempt: number; n: number }>(
      `SELECT attempt, count(*)::int AS n FROM "${schema}".run_effect WHERE run_id = $1 GROUP BY attempt ORDER BY attempt`,
      ['direct-resume'],
    );
    assert.deepEqual(attempts, [
      { attempt: 1, n: 100 },
      { attempt: 2, n: 50 },
    ]);
    // Starting a completed run again returns it and runs nothing.
    const again = await runs.start(RUN_QUEUE, { id: 'direct-resume', items: range(150) });
    assert.equal(again.created, false);
    assert.deepEqual(await effects(schema, 'direct-resume'), { rows: 150, distinct: 150 });

    // The same id with other input is refused, naming what differs; nothing runs or changes.
    const conflict = (differences: string[]) => (error: unknown) =>
      error instanceof CheckpointRunConflictError &&
      error.runId === 'direct-resume' &&
      JSON.stringify(error.differences.map((d) => d.split(' ')[0])) ===
        JSON.stringify(differences) &&
      differences.every((d) => error.message.includes(d));
    await assert.rejects(
      runs.start(RUN_QUEUE, { id: 'direct-resume', items: range(151) }),
      conflict(['items']),
    );
    await assert.rejects(
      runs.start(RUN_QUEUE, { id: 'direct-resume', items: [...range(149), 150] }),
      conflict(['items']),
    );
    await assert.rejects(
      runs.start(RUN_QUEUE, { id: 'direct-resume', items: range(150), chunkSize: 10 }),
      conflict(['chunkSize']),
    );
    await application.get<PgBoss>(CHECKPOINT_BOSS).createQueue('other-queue');
    await assert.rejects(
      runs.start('other-queue', { id: 'direct-resume', items: range(2), chunkSize: 10 }),
      conflict(['queue', 'items', 'chunkSize']),
    );
    assert.deepEqual(await effects(schema, 'direct-resume'), { rows: 150, distinct: 150 });

    // Over the threshold: queued, one job per chunk, worked by this process's worker.
    const large = await runs.start(RUN_QUEUE, { id: 'large', items: range(300), chunkSize: 100 });
    assert.equal(large.mode, 'queued');
    assert.equal(large.chunkCount, 3);
    await waitUntil(
      async () => (await runs.get('large'))?.state === 'completed',
      30_000,
      'the queued run',
    );
    assert.deepEqual(await effects(schema, 'large'), { rows: 300, distinct: 300 });
    const chunks = await runs.chunks('large');
    assert.deepEqual(
      chunks.map((chunk) => [chunk.index, chunk.state, chunk.processedItems, chunk.result]),
      [
        [0, 'completed', 100, { chunk: 0, items: 100 }],
        [1, 'completed', 100, { chunk: 1, items: 100 }],
        [2, 'completed', 100, { chunk: 2, items: 100 }],
      ],
    );
    const [hooks] = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".run_hook_effect WHERE run_id = 'large'`,
    );
    await waitUntil(
      async () =>
        (
          await sql<{ n: number }>(
            `SELECT count(*)::int AS n FROM "${schema}".run_hook_effect WHERE run_id = 'large'`,
          )
        )[0]?.n === 1,
      60_000,
      `the completion hook (had ${hooks?.n})`,
    );
    const listed = (await runs.list({ queue: RUN_QUEUE })).items;
    assert.deepEqual(listed.map((run) => run.id).sort(), ['direct-resume', 'large', 'small']);
  });

  it('bad input: a typed error naming the field, and nothing written', async () => {
    const { schema } = await setUp('rbad');
    const { runs } = await app(schema, false);
    const boss = new PgBoss({
      connectionString: DATABASE_URL,
      schema: `${schema}_boss`,
      max: 1,
      supervise: false,
    });
    boss.on('error', () => undefined);
    await boss.start();
    await boss.createQueue(RUN_QUEUE);
    await boss.stop({ graceful: false });
    const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['empty items', () => runs.start(RUN_QUEUE, { id: 'bad', items: [] }), /items/],
      [
        'items not an array',
        () => runs.start(RUN_QUEUE, { id: 'bad', items: 'x' as never }),
        /items/,
      ],
      [
        'chunkSize 0',
        () => runs.start(RUN_QUEUE, { id: 'bad', items: [1], chunkSize: 0 }),
        /chunkSize/,
      ],
      [
        'chunkSize -1',
        () => runs.start(RUN_QUEUE, { id: 'bad', items: [1], chunkSize: -1 }),
        /chunkSize/,
      ],
      [
        'chunkSize NaN',
        () => runs.start(RUN_QUEUE, { id: 'bad', items: [1], chunkSize: NaN }),
        /chunkSize/,
      ],
      [
        'chunkSize 1.5',
        () => runs.start(RUN_QUEUE, { id: 'bad', items: [1], chunkSize: 1.5 }),
        /chunkSize/,
      ],
      ['empty id', () => runs.start(RUN_QUEUE, { id: '', items: [1] }), /\bid\b/],
      ['long id', () => runs.start(RUN_QUEUE, { id: 'x'.repeat(201), items: [1] }), /\bid\b/],
      ['unknown queue', () => runs.start('nowhere', { id: 'bad', items: [1] }), /queue "nowhere"/],
      ['plan of 0 items', () => runs.plan(RUN_QUEUE, 0), /totalItems/],
    ];
    for (const [what, call, field] of cases) {
      await assert.rejects(call(), (error: unknown) => {
        assert.ok(error instanceof CheckpointValidationError, `${what}: ${String(error)}`);
        assert.match(error.message, field, what);
        return true;
      });
    }
    const [row] = await sql<{ runs: number; chunks: number; jobs: number }>(
      `SELECT (SELECT count(*)::int FROM "${schema}".run) AS runs,
              (SELECT count(*)::int FROM "${schema}".checkpoint) AS chunks,
              (SELECT count(*)::int FROM "${schema}_boss".job) AS jobs`,
    );
    assert.deepEqual(row, { runs: 0, chunks: 0, jobs: 0 });
  });

  it('atomic fan-out: SIGKILL during start, 20 times, leaves the whole run or none of it', async (t: TestContext) => {
    const { schema } = await setUp('ratomic');
    const boss = new PgBoss({
      connectionString: DATABASE_URL,
      schema: `${schema}_boss`,
      max: 1,
      supervise: false,
    });
    boss.on('error', () => undefined);
    await boss.start();
    await boss.createQueue(RUN_QUEUE);
    await boss.stop({ graceful: false });
    const { runs } = await app(schema, false);
    const CHUNKS = 200;
    const starter = (id: string) =>
      Child.start('run-starter', { SCHEMA: schema, RUN_ID: id, ITEMS: '2000', CHUNK_SIZE: '10' });

    // How long start() takes here, so that the kills land before, inside and after it.
    const calibration = starter('calibration');
    const [, , ms] = (await calibration.waitFor((line) => line.startsWith('started'))).split(' ');
    await calibration.exited;
    const startMs = Number(ms);
    assert.deepEqual(await stored(schema, 'calibration', CHUNKS), {
      runs: 1,
      chunks: CHUNKS,
      jobs: CHUNKS,
    });

    const outcomes = { none: 0, whole: 0 };
    for (let i = 0; i < 20; i++) {
      const id = `atomic-${i}`;
      const child = starter(id);
      await child.waitFor((line) => line === 'starting');
      await sleep(Math.random() * startMs * 2);
      await child.kill('SIGKILL');
      const after = await stored(schema, id, CHUNKS);
      const whole = after?.runs === 1;
      assert.deepEqual(
        after,
        whole ? { runs: 1, chunks: CHUNKS, jobs: CHUNKS } : { runs: 0, chunks: 0, jobs: 0 },
        `run ${id} after SIGKILL`,
      );
      outcomes[whole ? 'whole' : 'none'] += 1;
      const again = await runs.start(RUN_QUEUE, { id, items: range(2000), chunkSize: 10 });
      assert.equal(again.created, !whole);
      assert.equal(again.chunkCount, CHUNKS);
      assert.deepEqual(await stored(schema, id, CHUNKS), { runs: 1, chunks: CHUNKS, jobs: CHUNKS });
    }
    t.diagnostic(
      `start() of 200 chunks took ${startMs.toFixed(0)} ms; after 20 SIGKILLs: ${outcomes.whole} whole, ${outcomes.none} none, 0 partial`,
    );

    // The last run then completes on a worker with exactly its 200 chunk jobs; the others are cancelled.
    for (let i = 0; i < 19; i++) await runs.cancel(`atomic-${i}`);
    await runs.cancel('calibration');
    const worker = Child.start('run-worker', { SCHEMA: schema, CONCURRENCY: '8' });
    const workStarted = Date.now();
    cleanups.push(async () => void (await worker.kill('SIGKILL')));
    await waitUntil(
      async () => (await runs.get('atomic-19'))?.state === 'completed',
      90_000,
      'the last run to complete',
    );
    t.diagnostic(`one worker process completed the 200 chunks in ${Date.now() - workStarted} ms`);
    assert.deepEqual(await effects(schema, 'atomic-19'), { rows: 2000, distinct: 2000 });
    const [jobs] = await sql<{ completed: number; all: number }>(
      `SELECT count(*) FILTER (WHERE state = 'completed')::int AS completed, count(*)::int AS all
         FROM "${schema}_boss".job WHERE id = ANY($1::uuid[])`,
      [range(CHUNKS).map((i) => chunkJobId('atomic-19', i))],
    );
    assert.deepEqual(jobs, { completed: CHUNKS, all: CHUNKS });
    const [others] = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".run_effect WHERE run_id <> 'atomic-19'`,
    );
    assert.equal(others?.n, 0, 'cancelled runs never ran');
  });

  it('two last chunks committing together complete the run once, at once', async () => {
    const { schema } = await setUp('rlast');
    const boss = new PgBoss({
      connectionString: DATABASE_URL,
      schema: `${schema}_boss`,
      max: 1,
      supervise: false,
    });
    boss.on('error', () => undefined);
    await boss.start();
    await boss.createQueue(RUN_QUEUE);
    await boss.stop({ graceful: false });
    // No worker here and none elsewhere: the chunks are completed by hand, and no sweep runs.
    const { app: application, runs } = await app(schema, false);
    const service = application.get(CheckpointService);
    const dataSource = application.get<DataSource>(getDataSourceToken());
    await runs.start(RUN_QUEUE, { id: 'pair', items: range(4), chunkSize: 2 });
    const [a, b] = await runs.chunks('pair');
    assert.ok(a && b);
    const claimA = await service.claim(a.key);
    const claimB = await service.claim(b.key);
    const txA = dataSource.createQueryRunner();
    const txB = dataSource.createQueryRunner();
    await txA.startTransaction();
    await txB.startTransaction();
    await service.complete(a.key, claimA.epoch, 'a', { manager: txA.manager });
    let bDone = false;
    const completingB = service
      .complete(b.key, claimB.epoch, 'b', { manager: txB.manager })
      .then(() => (bDone = true));
    await sleep(300);
    assert.equal(bDone, false, 'the second completion waits for the run row');
    await txA.commitTransaction();
    await completingB;
    await txB.commitTransaction();
    await txA.release();
    await txB.release();
    const run = await runs.get('pair');
    assert.equal(run?.state, 'completed');
    assert.equal(run?.chunks.completed, 2);
  });
});
