// The completion hook of runs: exactly once per run across 20 runs, with worker processes
// SIGKILLed near each run's end or inside the hook itself. Real PostgreSQL, pg-boss, processes.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import { CheckpointRuns } from '../../src/index.js';
import { createRunTables, RUN_QUEUE } from '../fixtures/run-job.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import { Child } from '../support/process.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const cleanups: Array<() => Promise<void>> = [];

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function setUp(prefix: string, workerEnv: Record<string, string>) {
  const schema = uniqueSchema(prefix);
  await sql(`CREATE SCHEMA "${schema}"`);
  for (const statement of createRunTables(schema)) await sql(statement);
  const children = new Set<Child>();
  const start = (fixture: string, env: Record<string, string> = {}) => {
    const child = Child.start(fixture, { SCHEMA: schema, JOB_EVENTS: '1', ...workerEnv, ...env });
    children.add(child);
    return child;
  };
  const application = await createTestApp({
    schema,
    checkpoint: {
      boss: { connectionString: DATABASE_URL, schema: `${schema}_boss`, max: 2, supervise: false },
    },
  });
  cleanups.push(async () => {
    await application.close();
    await Promise.all([...children].map((child) => child.kill('SIGKILL')));
    await dropSchema(schema);
    await dropSchema(`${schema}_boss`);
  });
  return { schema, start, runs: application.get(CheckpointRuns) };
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('run completion', () => {
  it('the completion hook runs exactly once per run across 20 runs with crashes near the end', async (t: TestContext) => {
    const { schema, start, runs } = await setUp('rhook', {
      BATCH_SIZE: '50',
      BATCH_DELAY_MS: '20',
      HOOK_DELAY_MS: '300',
      CONCURRENCY: '2',
    });
    const workers = range(3).map(() => start('run-worker'));
    await Promise.all(workers.map((worker) => worker.waitFor((line) => line.startsWith('ready'))));
    let killsNearEnd = 0;
    let killsInHook = 0;
    const replace = async (index: number) => {
      await workers[index]?.kill('SIGKILL');
      workers[index] = start('run-worker');
    };
    for (let i = 0; i < 20; i++) {
      const id = `hook-${i}`;
      await runs.start(RUN_QUEUE, { id, items: range(400), chunkSize: 100 });
      if (i % 2 === 0) {
        // Kill a worker while the last chunks are finishing.
        await waitUntil(
          async () => ((await runs.get(id))?.processedItems ?? 0) >= 300,
          60_000,
          `${id} near its end`,
        );
        await replace(Math.floor(Math.random() * workers.length));
        killsNearEnd += 1;
      } else {
        // Kill the worker that runs the hook, between the run's completion and the hook's commit.
        const hooker = await Promise.race(
          workers.map((worker, index) =>
            worker.waitFor((line) => line === `hook ${id}`, 60_000).then(() => index),
          ),
        );
        await replace(hooker);
        killsInHook += 1;
      }
      await waitUntil(
        async () => (await runs.get(id))?.completedHookAt !== null,
        60_000,
        `the hook of ${id}`,
      );
    }
    await sleep(1500); // a second hook, if any, would land within a sweep or two
    const counts = await sql<{ run_id: string; n: number }>(
      `SELECT run_id, count(*)::int AS n FROM "${schema}".run_hook_effect GROUP BY run_id ORDER BY run_id`,
    );
    t.diagnostic(`${killsNearEnd} SIGKILLs near a run's end, ${killsInHook} inside the hook`);
    assert.equal(counts.length, 20);
    for (const { run_id, n } of counts) assert.equal(n, 1, `the hook of ${run_id} ran ${n} times`);
    const [effect] = await sql<{ rows: number; distinct: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT (run_id, item))::int AS distinct FROM "${schema}".run_effect`,
    );
    assert.deepEqual(effect, { rows: 8000, distinct: 8000 });
  });
});
