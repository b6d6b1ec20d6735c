// A live upgrade: worker processes of the previous build (PREVIOUS_COMMIT, schema up to
// migration 7) keep working pg-boss jobs and a run's chunks while processes of this build boot
// on the same schema and apply the newer migrations (8: run counts trigger, 9: CREATE INDEX
// CONCURRENTLY, 10 to 16). One old worker is SIGKILLed after the upgrade. Every item's effect
// lands once, every job completes, the run's counts on its row match its chunks. The second test
// shows why this build's processes, unlike the previous build's, keep working on a schema that a
// later version migrates under them.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { PgBoss } from 'pg-boss';
import { QUEUE } from '../fixtures/queue-job.js';
import { createRunTables } from '../fixtures/run-job.js';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import { buildPrevious } from '../support/previous-build.js';
import { Child } from '../support/process.js';
import { cleanUpAfterAll, workerBed } from '../support/workers.js';
import {
  CheckpointMigrationLockError,
  CheckpointService,
  checkpointMigrations,
  runCheckpointMigrations,
} from '../../src/index.js';
import { waitUntil } from '../support/wait.js';

cleanUpAfterAll();

const JOB_ITEMS = 1000;
/** Two runs: one started by the previous build before the upgrade, one after it. */
const RUNS = { before: 40_000, after: 5_000 };
const RUN_CHUNK = 500;
/** The run workers' batch delay: the first run outlasts the upgrade on a slow machine. */
const WORK = { BATCH_DELAY_MS: '60' };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The next line `child` prints (after what it printed so far) that matches. */
async function nextLine(child: Child, test: (line: string) => boolean) {
  return (await Child.nextOf([child], test)).line;
}

interface LockWait {
  query: string;
  ms: number;
}

/**
 * Samples, every 25 ms until stopped, the statements of this schema waiting for a lock: the
 * longest wait seen of each (backend, statement).
 */
function sampleLockWaits(schema: string) {
  const longest = new Map<string, LockWait>();
  let running = true;
  const done = (async () => {
    while (running) {
      const rows = await sql<{ pid: number; query: string; ms: number }>(
        `SELECT pid, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS query,
                (extract(epoch FROM clock_timestamp() - query_start) * 1000)::int AS ms
           FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'
            AND position($1 IN query) > 0`,
        [schema],
      );
      for (const row of rows) {
        const key = `${row.pid} ${row.query}`;
        if ((longest.get(key)?.ms ?? -1) < row.ms)
          longest.set(key, { query: row.query, ms: row.ms });
      }
      await sleep(25);
    }
  })();
  return async () => {
    running = false;
    await done;
    return [...longest.values()];
  };
}

/** Keeps two screening jobs waiting in the queue until stopped: no worker runs out of work. */
function feedJobs(boss: PgBoss, schema: string) {
  const sent: string[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const [queued] = await sql<{ count: number }>(
        `SELECT count(*)::int AS count FROM "${schema}_boss".job WHERE name = $1 AND state = 'created'`,
        [QUEUE],
      );
      if ((queued?.count ?? 0) < 2) {
        const id = await boss.send(QUEUE, { count: JOB_ITEMS, batchDelayMs: 30 });
        assert.ok(id);
        sent.push(id);
      } else await sleep(100);
    }
  })();
  return async () => {
    running = false;
    await done;
    return sent;
  };
}

async function jobStates(schema: string) {
  return sql<{ name: string; state: string; count: number; retries: number }>(
    `SELECT name, state, count(*)::int AS count, sum(retry_count)::int AS retries
       FROM "${schema}_boss".job GROUP BY name, state ORDER BY name, state`,
  );
}

describe('live upgrade', () => {
  it('workers of the previous build go on while this build migrates the same schema under them', async (t: TestContext) => {
    const building = Date.now();
    const previous = await buildPrevious();
    t.after(() => previous.remove());
    t.diagnostic(
      `previous build ${previous.commit.slice(0, 7)} compiled in ${Date.now() - building} ms`,
    );

    const { schema, boss, startWorker } = await workerBed('upgrade', 'queue-worker', WORK);
    for (const statement of createRunTables(schema)) await sql(statement);
    const env = { SCHEMA: schema, JOB_EVENTS: '1', ...WORK };
    const children: Child[] = [];
    const startOld = (fixture: string, extra: Record<string, string> = {}) => {
      const child = previous.start(fixture, { ...env, ...extra });
      children.push(child);
      return child;
    };
    t.after(async () => {
      await Promise.all(children.map((child) => child.kill('SIGKILL')));
    });
    const startRun = async (id: string) => {
      const starter = startOld('run-starter', {
        RUN_ID: id,
        ITEMS: String(RUNS[id as keyof typeof RUNS]),
        CHUNK_SIZE: String(RUN_CHUNK),
      });
      assert.deepEqual(await starter.exited, { code: 0, signal: null }, starter.stderr);
    };
    const versions = async () =>
      (await sql<{ version: number }>(`SELECT version FROM "${schema}".migration`))
        .map((row) => row.version)
        .sort((a, b) => a - b);

    // The previous build creates the schema (migrations 1 to 7) and starts working.
    const oldQueue = [startOld('queue-worker'), startOld('queue-worker')];
    const oldRuns = startOld('run-worker');
    const old = [...oldQueue, oldRuns];
    await Promise.all(old.map((w) => w.waitFor((l) => l.startsWith('ready'))));
    assert.deepEqual(await versions(), [1, 2, 3, 6, 7]);
    await startRun('before');
    const stopFeeding = feedJobs(boss, schema);
    const batch = (l: string) => l.startsWith('batch ');
    // The old build goes on: its run worker, and its queue workers as a group (which of them
    // takes the next job is pg-boss's choice; one may wait a poll or two for one).
    const oldGoesOn = () => Promise.all([Child.nextOf(oldQueue, batch), nextLine(oldRuns, batch)]);
    await oldGoesOn();

    // A long transaction holds the checkpoint table in a mode that DDL waits for, as a worker's
    // long batch transaction that wrote its checkpoint would.
    const blocker = new pg.Client({ connectionString: DATABASE_URL });
    await blocker.connect();
    t.after(() => blocker.end());
    await blocker.query('BEGIN');
    await blocker.query(`LOCK TABLE "${schema}".checkpoint IN ROW EXCLUSIVE MODE`);
    const blockerPid = (await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
      .rows[0]?.pid;
    // With little patience, this build's migration runner gives up: nothing applied, the holder
    // named.
    const dataSource = new DataSource({ type: 'postgres', url: DATABASE_URL, extra: { max: 1 } });
    await dataSource.initialize();
    const runner = dataSource.createQueryRunner();
    await assert.rejects(
      runCheckpointMigrations(runner, schema, { lockTimeoutMs: 300, patienceMs: 1_500 }),
      (error: unknown) =>
        error instanceof CheckpointMigrationLockError &&
        error.version === 8 &&
        error.blockers.includes(`pid ${blockerPid} `),
    );
    await runner.release();
    await dataSource.destroy();
    assert.deepEqual(await versions(), [1, 2, 3, 6, 7]);

    // This build boots on the same schema while they work: its migrations give way to the
    // blocker again and again (logged), and the old workers go on meanwhile.
    const all = checkpointMigrations.map((migration) => migration.version);
    const stopSampling = sampleLockWaits(schema);
    const booting = Date.now();
    const fresh = [startWorker(), Child.start('run-worker', env)];
    children.push(...fresh);
    const gaveWay = (l: string) => l.includes('checkpoint migration 8 gave way');
    await Promise.race(fresh.map((w) => w.waitFor(gaveWay, 120_000)));
    for (let round = 0; round < 2; round++) await oldGoesOn();
    const warnings = () => fresh.flatMap((w) => w.lines.filter(gaveWay));
    await waitUntil(
      () => warnings().length >= 2,
      60_000,
      () => 'a second attempt',
    );
    assert.deepEqual(await versions(), [1, 2, 3, 6, 7]);
    t.diagnostic(
      `while a transaction held the table: ${warnings()[0]?.replace(/^.*checkpoint migration/, 'checkpoint migration')}`,
    );
    await blocker.query('COMMIT');
    await waitUntil(
      async () => (await versions()).length === all.length,
      120_000,
      () => 'the migrations',
    );
    const migratedMs = Date.now() - booting;
    const waits = await stopSampling();
    assert.deepEqual(await versions(), all);
    t.diagnostic(
      `this build's processes migrated ${migratedMs} ms after they were started (${warnings().length} attempts gave way to the blocker)`,
    );
    for (const wait of waits.sort((a, b) => b.ms - a.ms).slice(0, 8))
      t.diagnostic(`waited for a lock ${wait.ms} ms: ${wait.query}`);

    // The previous build starts a run on the new schema: a new process, whose connections prepare
    // its statements after the change. Its workers that ran before go on where a connection had
    // not prepared its claim yet: the claim of the previous build returns `*`, which migrations
    // 11 and 13 changed, and PostgreSQL refuses it on a connection that prepared it before (see
    // the next test). A refused claim fails the attempt; pg-boss retries the job, and a worker
    // takes it again.
    const upgradedAt = old.map((w) => w.lines.length);
    await startRun('after');
    await Promise.all(fresh.map((w) => w.waitFor((l) => l.startsWith('ready'), 120_000)));
    // This build works the queues and the runs; then an old queue worker is SIGKILLed, in a job
    // or between two.
    await Promise.all([nextLine(fresh[0], batch), nextLine(fresh[1], batch)]);
    const victim = oldQueue[0];
    await victim.kill('SIGKILL');
    const jobs = await stopFeeding();

    await waitUntil(
      async () => {
        const states = await jobStates(schema);
        const runs = await sql<{ state: string }>(`SELECT state FROM "${schema}".run`);
        return (
          runs.length === 2 &&
          runs.every((run) => run.state === 'completed') &&
          states.every((row) => row.state === 'completed')
        );
      },
      240_000,
      () => `every job and both runs to complete`,
    );
    t.diagnostic(`pg-boss jobs: ${JSON.stringify(await jobStates(schema))}`);
    const stopped = children.flatMap((w) => w.lines.filter((l) => l.startsWith('stopped')));
    t.diagnostic(
      `jobs that stopped with an error: ${stopped.length ? stopped.join('; ') : 'none'}`,
    );
    const batches = (w: Child | undefined) => w?.lines.filter((l) => l.startsWith('batch ')).length;
    t.diagnostic(
      `batches: old queue workers ${oldQueue.map(batches).join(' and ')} (the first SIGKILLed), old run worker ${batches(oldRuns)}, new queue worker ${batches(fresh[0])}, new run worker ${batches(fresh[1])}`,
    );
    const afterUpgrade = old.map(
      (w, i) => w.lines.slice(upgradedAt[i]).filter((l) => l.startsWith('batch ')).length,
    );
    t.diagnostic(
      `batches of the previous build's workers after the upgrade: ${afterUpgrade.join(', ')}`,
    );

    // Each item's effect exactly once.
    const effects = await sql<{ job_id: string; rows: number; distinct: number }>(
      `SELECT job_id, count(*)::int AS rows, count(DISTINCT item)::int AS distinct
         FROM "${schema}".job_effect GROUP BY job_id ORDER BY job_id`,
    );
    assert.deepEqual(
      effects,
      [...jobs].sort().map((id) => ({ job_id: id, rows: JOB_ITEMS, distinct: JOB_ITEMS })),
    );
    const runEffects = await sql(
      `SELECT run_id, count(*)::int AS rows, count(DISTINCT item)::int AS distinct,
              (SELECT count(*)::int FROM "${schema}".run_hook_effect h WHERE h.run_id = e.run_id) AS hooks
         FROM "${schema}".run_effect e GROUP BY run_id ORDER BY run_id`,
    );
    assert.deepEqual(runEffects, [
      { run_id: 'after', rows: RUNS.after, distinct: RUNS.after, hooks: 1 },
      { run_id: 'before', rows: RUNS.before, distinct: RUNS.before, hooks: 1 },
    ]);

    // The counts migration 8 keeps on each run's row match its chunks, though chunks moved
    // under both builds, before and after the trigger existed.
    const counts = await sql(
      `SELECT id, chunks_pending, chunks_running, chunks_released, chunks_paused,
              chunks_completed, chunks_failed, chunks_cancelled, chunks_started,
              items_settled::int AS items_settled
         FROM "${schema}".run ORDER BY id`,
    );
    assert.deepEqual(
      counts,
      (['after', 'before'] as const).map((id) => ({
        id,
        chunks_pending: 0,
        chunks_running: 0,
        chunks_released: 0,
        chunks_paused: 0,
        chunks_completed: RUNS[id] / RUN_CHUNK,
        chunks_failed: 0,
        chunks_cancelled: 0,
        chunks_started: RUNS[id] / RUN_CHUNK,
        items_settled: RUNS[id],
      })),
    );
    t.diagnostic(
      `${jobs.length} jobs of ${JOB_ITEMS} items, runs of ${RUNS.before} and ${RUNS.after} items in chunks of ${RUN_CHUNK}: each item once`,
    );
  });

  it("a column that a later version's migration adds leaves this version's prepared statements working", async (t: TestContext) => {
    // The previous build above claims with `RETURNING *`: once migration 11 or 13 adds a column,
    // its connections that prepared the claim before fail it with "cached plan must not change
    // result type" until they close. This version names its columns; a pool of two connections,
    // used one statement at a time, prepares every statement of the path before the change.
    const schema = uniqueSchema('upgrade_column');
    const app = await createTestApp({ schema, poolSize: 2 });
    t.after(async () => {
      await app.close();
      await dropSchema(schema);
    });
    const service = app.get(CheckpointService);
    const cycle = async (key: string) => {
      await service.saveCheckpoint(`${key}-saved`, {
        currentBatchIndex: 1,
        currentIndex: 10,
        processedBatches: 1,
        totalBatches: 2,
      });
      const claim = await service.claim(key);
      await service.advance(key, claim.epoch, { currentIndex: 10, processedBatches: 1 });
      await service.complete(key, claim.epoch, { ok: true });
    };
    for (let round = 0; round < 4; round++) await cycle(`before-${round}`);
    await sql(`ALTER TABLE "${schema}".checkpoint ADD COLUMN added_by_a_later_version integer`);
    for (let round = 0; round < 4; round++) await cycle(`after-${round}`);
    const [row] = await sql<{ completed: number }>(
      `SELECT count(*)::int AS completed FROM "${schema}".checkpoint WHERE state = 'completed'`,
    );
    assert.equal(row?.completed, 8);
  });
});
