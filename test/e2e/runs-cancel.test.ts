// Cancelling a run while four worker processes work it: every chunk stops at its next batch
// boundary, no chunk job runs again, and what was committed stays.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { RUN_QUEUE } from '../fixtures/run-job.js';
import { sql } from '../support/database.js';
import { range, runsTestBed, sleep } from '../support/runs.js';

const { setUp } = runsTestBed();

describe('cancelling a run', () => {
  it('cancel during a 4-worker run: all workers stop within 2 s, no chunk job runs again, nothing committed is lost', async (t: TestContext) => {
    const { schema, start, runs } = await setUp('rcancel', {
      BATCH_SIZE: '50',
      BATCH_DELAY_MS: '100',
      CONCURRENCY: '2',
    });
    const workers = range(4).map(() => start('run-worker'));
    await Promise.all(workers.map((worker) => worker.waitFor((line) => line.startsWith('ready'))));
    await runs.start(RUN_QUEUE, { id: 'doomed', items: range(20_000), chunkSize: 500 });
    const deadline = Date.now() + 60_000;
    while (((await runs.get('doomed'))?.processedItems ?? 0) < 4000) {
      if (Date.now() > deadline) assert.fail('the run never reached 20%');
      await sleep(100);
    }
    const startsBefore = () =>
      workers.map(
        (worker) => worker.lines.filter((line) => line.startsWith('start doomed')).length,
      );
    const cancelledAt = Date.now();
    const cancelled = await runs.cancel('doomed');
    assert.equal(cancelled.state, 'cancelled');

    // Every chunk that was running stops at its next batch boundary.
    let stoppedMs = -1;
    while (Date.now() - cancelledAt < 10_000) {
      const [row] = await sql<{ running: number }>(
        `SELECT count(*)::int AS running FROM "${schema}".checkpoint WHERE run_id = 'doomed' AND state = 'running'`,
      );
      if (row?.running === 0) {
        stoppedMs = Date.now() - cancelledAt;
        break;
      }
      await sleep(50);
    }
    const starts = startsBefore();
    const effectAtStop = await effectRows(schema);
    await sleep(4000);
    t.diagnostic(`every chunk stopped ${stoppedMs} ms after cancel()`);
    assert.ok(stoppedMs >= 0 && stoppedMs < 2000, `chunks stopped after ${stoppedMs} ms`);
    assert.deepEqual(startsBefore(), starts, 'no chunk job started again after the cancel');
    assert.deepEqual(
      await effectRows(schema),
      effectAtStop,
      'nothing was committed after the stop',
    );

    const jobs = await sql<{ state: string; n: number }>(
      `SELECT state, count(*)::int AS n FROM "${schema}_boss".job WHERE name = $1 GROUP BY state ORDER BY state`,
      [RUN_QUEUE],
    );
    assert.ok(
      jobs.every((row) => row.state === 'cancelled' || row.state === 'completed'),
      `jobs left: ${JSON.stringify(jobs)}`,
    );
    const [chunks] = await sql<{ committed: string; open: number }>(
      `SELECT sum(current_index)::text AS committed,
              count(*) FILTER (WHERE state NOT IN ('completed', 'cancelled'))::int AS open
         FROM "${schema}".checkpoint WHERE run_id = 'doomed'`,
    );
    assert.equal(chunks?.open, 0);
    // What committed stays: every checkpointed item has its effect, once, and nothing more.
    assert.equal(effectAtStop.rows, Number(chunks?.committed));
    assert.equal(effectAtStop.rows, effectAtStop.distinct);
    const run = await runs.get('doomed');
    assert.equal(run?.state, 'cancelled');
    assert.equal(run?.processedItems, effectAtStop.rows);
    assert.ok(effectAtStop.rows < 20_000, 'the run did not finish anyway');
  });
});

async function effectRows(schema: string) {
  const [row] = await sql<{ rows: number; distinct: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct FROM "${schema}".run_effect WHERE run_id = 'doomed'`,
  );
  return row ?? { rows: 0, distinct: 0 };
}
