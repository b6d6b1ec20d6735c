// A run's state is one definition, read the same by get(), list(), its filters and watch()
// (issue 22): a run is `failed` only when no chunk of it will run again. Worker processes are
// SIGKILLed while another process polls get() every 50 ms and holds a watch(); a chunk that fails
// for good ends the watch with `failed`. Real PostgreSQL, real pg-boss, real processes.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { RUN_QUEUE } from '../fixtures/run-job.js';
import { sql } from '../support/database.js';
import { range, runsTestBed, sleep } from '../support/runs.js';

const { setUp } = runsTestBed();

/** Polls `read` until `done` holds of its value, for at most `ms`. */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) assert.fail(`gave up after ${ms} ms: ${JSON.stringify(value)}`);
    await sleep(50);
  }
}

describe('run states', () => {
  it('SIGKILLed workers while chunk jobs wait for their retry: get never reads failed, watch completes with completed', async (t: TestContext) => {
    const { schema, start, runs } = await setUp('rstate', {
      BATCH_SIZE: '50',
      BATCH_DELAY_MS: '30',
      CONCURRENCY: '2',
      // A crashed chunk's job waits 2 s in pg-boss's `retry` state: the window in which a run
      // whose chunks all settled used to read `failed`.
      RETRY_DELAY: '2',
    });
    const workers = range(4).map(() => start('run-worker'));
    await Promise.all(
      workers.map((worker) => worker.waitFor((line) => line.startsWith('ready'), 120_000)),
    );
    const poller = start('run-poller', { RUN_ID: 'kill' });
    await poller.waitFor((line) => line === 'ready', 120_000);
    const total = 40_000;
    await runs.start(RUN_QUEUE, { id: 'kill', items: range(total), chunkSize: 1000 });

    // Random kills while chunks are still pending...
    let kills = 0;
    for (let i = 0; i < 3; i++) {
      await sleep(700 + Math.random() * 600);
      const victim = Math.floor(Math.random() * workers.length);
      await workers[victim]?.kill('SIGKILL');
      workers[victim] = start('run-worker');
      kills += 1;
    }
    // ...then every worker at once when no chunk is pending any more: every chunk is completed
    // or, once a new worker's reaper abandons it, failed with its job waiting to be retried.
    await until(
      () => runs.get('kill'),
      (run) => run?.chunks.pending === 0 && run.chunks.running > 0,
      60_000,
    );
    await Promise.all(workers.map((worker) => worker.kill('SIGKILL')));
    kills += workers.length;
    for (const _ of range(4)) start('run-worker');

    await poller.waitFor((line) => line.startsWith('end '), 120_000);
    const lines = poller.lines;
    t.diagnostic(
      `${total} items, 40 chunks, ${kills} SIGKILLs; the poller read: ${lines.filter((l) => l.startsWith('get ')).join(', ')}; ` +
        `${lines.filter((l) => l === 'settled-with-failures').length > 0 ? 'saw' : 'did not see'} every chunk settled with failures`,
    );
    assert.deepEqual(
      lines.filter((line) => line.endsWith(' failed')),
      [],
      'no read of failed',
    );
    assert.equal(lines.at(-1), 'end completed');
    // The window the old definition read as failed did happen: every chunk settled, some failed.
    assert.ok(lines.includes('settled-with-failures'), lines.join('\n'));

    const [effect] = await sql<{ rows: number; distinct: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct FROM "${schema}".run_effect WHERE run_id = 'kill'`,
    );
    assert.deepEqual(effect, { rows: total, distinct: total });
  });

  it('a chunk that fails for good: the run reads failed once its job is spent, watch completes with failed, the filters agree', async () => {
    const { schema, start, runs } = await setUp('rstatef', {
      BATCH_SIZE: '100',
      FAIL_CHUNK: 'doomed:1',
      RETRY_LIMIT: '1',
    });
    const workers = range(2).map(() => start('run-worker'));
    await Promise.all(
      workers.map((worker) => worker.waitFor((line) => line.startsWith('ready'), 120_000)),
    );
    const poller = start('run-poller', { RUN_ID: 'doomed' });
    await poller.waitFor((line) => line === 'ready', 120_000);
    const run = await runs.start(RUN_QUEUE, { id: 'doomed', items: range(4000), chunkSize: 1000 });

    await poller.waitFor((line) => line.startsWith('end '), 60_000);
    assert.equal(poller.lines.at(-1), 'end failed');
    assert.ok(poller.lines.includes('get failed'));
    // Failed means spent: the chunk's job is failed in pg-boss after its two tries.
    const jobs = await sql<{ state: string; retry_count: number }>(
      `SELECT j.state::text, j.retry_count FROM "${schema}_boss".job j
       JOIN "${schema}".checkpoint c ON c.job_id = j.id::text
       WHERE c.run_id = 'doomed' AND c.run_chunk = 1`,
    );
    assert.deepEqual(jobs, [{ state: 'failed', retry_count: 1 }]);
    const read = await runs.get('doomed');
    assert.equal(read?.state, 'failed');
    assert.deepEqual(read?.chunks, { ...read?.chunks, completed: 3, failed: 1 });
    const ids = async (state: 'failed' | 'running' | 'created') =>
      (await runs.list({ state })).items.map((each) => each.id);
    assert.deepEqual(await ids('failed'), [run.id]);
    assert.deepEqual(await ids('running'), []);
    assert.deepEqual(await ids('created'), []);
    assert.equal((await runs.list()).items[0]?.state, 'failed');
  });
});
