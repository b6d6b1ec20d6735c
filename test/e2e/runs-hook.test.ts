// The completion hook of runs: exactly once per run across 20 runs, with worker processes
// SIGKILLed near each run's end or inside the hook itself. Real PostgreSQL, pg-boss, processes.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { RUN_QUEUE } from '../fixtures/run-job.js';
import { sql } from '../support/database.js';
import { range, runsTestBed, sleep } from '../support/runs.js';
import { waitUntil } from '../support/wait.js';

const { setUp } = runsTestBed();

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
