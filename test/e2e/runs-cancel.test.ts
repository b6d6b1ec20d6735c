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
  it('cancel during a 4-worker run: every chunk stops a batch or two after it, no chunk job runs again, nothing committed is lost', async (t: TestContext) => {
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
    const cancelled = await runs.cancel('doomed');
    assert.equal(cancelled.state, 'cancelled');
    // Read after the cancel committed: what commits from here is what each chunk did before it
    // heard it (NOTIFY: the batch in flight, perhaps the next; the lease renewal every 10 s
    // would let some 100 batches of 100 ms through).
    const atRequest = await committed(schema);

    // Every chunk that was running stops at its next batch boundary.
    await until(async () => {
      const [row] = await sql<{ running: number }>(
        `SELECT count(*)::int AS running FROM "${schema}".checkpoint WHERE run_id = 'doomed' AND state = 'running'`,
      );
      return row?.running === 0;
    }, 'every chunk to stop');
    const atStop = await committed(schema);
    const batchesAfter = Math.max(
      0,
      ...[...atStop].map(([key, index]) => (index - (atRequest.get(key) ?? 0)) / 50),
    );
    t.diagnostic(
      `every chunk stopped; the most batches one committed after cancel(): ${batchesAfter}`,
    );
    assert.ok(batchesAfter <= 3, `a chunk committed ${batchesAfter} batches after the cancel`);
    const starts = startsBefore();
    const effectAtStop = await effectRows(schema);

    // No chunk job can run again: each is cancelled or completed in pg-boss.
    let jobs: Array<{ state: string; n: number }> = [];
    await until(
      async () => {
        jobs = await sql<{ state: string; n: number }>(
          `SELECT state, count(*)::int AS n FROM "${schema}_boss".job WHERE name = $1 GROUP BY state ORDER BY state`,
          [RUN_QUEUE],
        );
        return jobs.every((row) => row.state === 'cancelled' || row.state === 'completed');
      },
      `every chunk job to end (${JSON.stringify(jobs)})`,
    );
    assert.deepEqual(startsBefore(), starts, 'no chunk job started again after the cancel');
    assert.deepEqual(
      await effectRows(schema),
      effectAtStop,
      'nothing was committed after the stop',
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

/** Each chunk's committed position, by key. */
async function committed(schema: string): Promise<Map<string, number>> {
  const rows = await sql<{ key: string; current_index: string }>(
    `SELECT key, current_index FROM "${schema}".checkpoint WHERE run_id = 'doomed'`,
  );
  return new Map(rows.map((row) => [row.key, Number(row.current_index)]));
}

/** Waits (bounded: a busy machine, not a measurement) until `check` holds. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function effectRows(schema: string) {
  const [row] = await sql<{ rows: number; distinct: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct FROM "${schema}".run_effect WHERE run_id = 'doomed'`,
  );
  return row ?? { rows: 0, distinct: 0 };
}
