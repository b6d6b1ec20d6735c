// Runs under crashes: a 100,000-item run over four worker processes SIGKILLed at random, watched
// from another process. Real PostgreSQL, real pg-boss, real processes.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { RUN_QUEUE } from '../fixtures/run-job.js';
import { sql } from '../support/database.js';
import { range, runsTestBed, sleep } from '../support/runs.js';

const { setUp } = runsTestBed();

describe('runs under crashes', () => {
  it('100,000 items over 4 workers with random SIGKILLs: completes, each item once, watched without going back', async (t: TestContext) => {
    const { schema, start, runs } = await setUp('rchaos', {
      BATCH_SIZE: '100',
      BATCH_DELAY_MS: '40',
      CONCURRENCY: '2',
    });
    const workers = range(4).map(() => start('run-worker'));
    await Promise.all(workers.map((worker) => worker.waitFor((line) => line.startsWith('ready'))));

    // plan() sees the four live workers and gives each of them work.
    const plan = await runs.plan(RUN_QUEUE, 100_000);
    t.diagnostic(`plan before any run: ${plan.reason}`);
    assert.equal(plan.workers, 4);
    assert.equal(plan.itemMs, null);
    assert.ok(plan.chunkCount >= 4, plan.reason);

    const watcher = start('run-watcher', { RUN_ID: 'big' });
    await watcher.waitFor((line) => line === 'ready');
    const run = await runs.start(RUN_QUEUE, { id: 'big', items: range(100_000), chunkSize: 2500 });
    assert.equal(run.chunkCount, 40);
    const started = Date.now();
    let kills = 0;
    while ((await runs.get('big'))?.state !== 'completed') {
      if (Date.now() - started > 600_000)
        assert.fail(`the run did not complete: ${JSON.stringify(await runs.get('big'))}`);
      await sleep(800 + Math.random() * 700);
      if ((await runs.get('big'))?.state === 'completed') break;
      const victim = Math.floor(Math.random() * workers.length);
      await workers[victim]?.kill('SIGKILL');
      kills += 1;
      workers[victim] = start('run-worker');
    }
    const ms = Date.now() - started;
    await watcher.waitFor((line) => line === 'end', 60_000);
    const progress = watcher.lines
      .filter((line) => line.startsWith('progress '))
      .map((line) => {
        const [, items, state] = line.split(' ');
        return { items: Number(items), state };
      });
    t.diagnostic(
      `100,000 items, 40 chunks, 4 workers, ${kills} SIGKILLs: completed in ${ms} ms; the watcher saw ${progress.length} values`,
    );
    assert.ok(kills >= 3, `${kills} kills`);
    assert.ok(progress.length >= 5, `${progress.length} progress values`);
    for (let i = 1; i < progress.length; i++) {
      assert.ok(
        (progress[i]?.items ?? 0) >= (progress[i - 1]?.items ?? 0),
        `progress went back: ${JSON.stringify(progress.slice(i - 1, i + 1))}`,
      );
    }
    assert.deepEqual(progress.at(-1), { items: 100_000, state: 'completed' });

    const [effect] = await sql<{ rows: number; distinct: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct FROM "${schema}".run_effect WHERE run_id = 'big'`,
    );
    assert.deepEqual(effect, { rows: 100_000, distinct: 100_000 });
    const final = await runs.get('big');
    assert.equal(final?.processedItems, 100_000);
    assert.equal(final?.chunks.completed, 40);

    // The run measured its per-item time: the plan now sizes a chunk to last about the target.
    assert.ok(final?.itemMs !== null && (final?.itemMs ?? 0) > 0, `itemMs ${final?.itemMs}`);
    const timed = await runs.plan(RUN_QUEUE, 1_000_000, { targetChunkMs: 2000 });
    t.diagnostic(`plan after the run: ${timed.reason}`);
    assert.equal(timed.measuredRuns, 1);
    assert.ok(timed.chunkCount >= timed.workers, timed.reason);
    const chunkMs = timed.estimatedChunkMs ?? 0;
    assert.ok(
      chunkMs > 2000 * 0.9 && chunkMs <= 2000,
      `a chunk lasts ${chunkMs} ms, not about 2000`,
    );
  });
});
