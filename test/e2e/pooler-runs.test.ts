// A run of many chunks over several pg-boss worker processes, all through a real PgBouncer in
// transaction pooling without a direct URL (no lease session, no LISTEN: a dead owner ends by
// lease expiry, watch by the shared poll), its server connections recycled every 2 s. One worker
// is SIGKILLed in the middle of a chunk; a watcher process follows the run to completion.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { RUN_QUEUE } from '../fixtures/run-job.js';
import { sql } from '../support/database.js';
import { PgBouncer } from '../support/pgbouncer.js';
import { Child } from '../support/process.js';
import { range, runsTestBed } from '../support/runs.js';

const { setUp } = runsTestBed();
const LEASE_TTL_MS = 3000;
const CONNECTION = { pooling: 'transaction' } as const;
let bouncer: PgBouncer;

before(async () => {
  bouncer = await PgBouncer.recycling(20);
});

// Registered after runsTestBed's: the workers and the application are gone before the pooler.
after(async () => {
  await bouncer?.stop();
});

/** Resolves when `child` has printed `count` lines that pass `test`. */
function nth(child: Child, count: number, test: (line: string) => boolean): Promise<string> {
  let seen = 0;
  return child.waitFor((line) => test(line) && ++seen >= count);
}

describe('a run through a transaction pooler without a direct URL', () => {
  it('24,000 items in 12 chunks over 3 workers, one SIGKILLed mid-chunk: completes, each item once, every chunk completed, no job failed, watched without going back', async (t: TestContext) => {
    const env = {
      DATABASE_URL: bouncer.url,
      CHECKPOINT_OPTIONS: JSON.stringify({ connection: CONNECTION, leaseTtlMs: LEASE_TTL_MS }),
      BATCH_SIZE: '100',
      BATCH_DELAY_MS: '40',
      CONCURRENCY: '2',
    };
    const { schema, start, runs } = await setUp('prun', env, {
      url: bouncer.url,
      checkpoint: { connection: CONNECTION, leaseTtlMs: LEASE_TTL_MS },
    });
    const workers = range(3).map(() => start('run-worker'));
    await Promise.all(workers.map((worker) => worker.waitFor((line) => line.startsWith('ready'))));
    // The workers' heartbeats reach the run registry through the pooler.
    const plan = await runs.plan(RUN_QUEUE, 24_000);
    assert.equal(plan.workers, 3, plan.reason);

    const watcher = start('run-watcher', { RUN_ID: 'pooled' });
    await watcher.waitFor((line) => line === 'ready');
    const run = await runs.start(RUN_QUEUE, {
      id: 'pooled',
      items: range(24_000),
      chunkSize: 2000,
    });
    assert.equal(run.chunkCount, 12);

    // The victim dies in the middle of a chunk: right after its fifth batch began.
    const victim = workers[0];
    const line = await nth(victim, 5, (one) => one.startsWith('batch pooled '));
    const chunk = Number(line.split(' ')[2]);
    await victim.kill('SIGKILL');
    const killed = Date.now();
    workers.push(start('run-worker'));
    const { line: resumed } = await Child.firstOf(
      workers.slice(1),
      (one) => one.startsWith(`start pooled ${chunk} `) && Number(one.split(' ')[4]) >= 2,
    );
    const takeoverMs = Date.now() - killed;

    await watcher.waitFor((one) => one === 'end');
    const progress = watcher.lines
      .filter((one) => one.startsWith('progress '))
      .map((one) => {
        const [, items, state] = one.split(' ');
        return { items: Number(items), state };
      });
    for (let i = 1; i < progress.length; i++) {
      assert.ok(
        (progress[i]?.items ?? 0) >= (progress[i - 1]?.items ?? 0),
        `progress went back: ${JSON.stringify(progress.slice(i - 1, i + 1))}`,
      );
    }
    assert.deepEqual(progress.at(-1), { items: 24_000, state: 'completed' });

    const final = await runs.get('pooled');
    assert.equal(final?.state, 'completed');
    assert.equal(final?.processedItems, 24_000);
    assert.equal(final?.chunks.completed, 12);
    assert.equal(final?.chunks.failed, 0);
    const [effect] = await sql<{ rows: number; distinct: number; resumed: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct,
              count(*) FILTER (WHERE attempt > 1)::int AS resumed
         FROM "${schema}".run_effect WHERE run_id = 'pooled'`,
    );
    assert.equal(effect?.rows, 24_000);
    assert.equal(effect?.distinct, 24_000);
    assert.ok((effect?.resumed ?? 0) > 0, 'the killed chunk was finished by another attempt');
    const jobs = await sql<{ state: string; count: number }>(
      `SELECT state, count(*)::int AS count FROM "${schema}_boss".job
        WHERE name = $1 GROUP BY state ORDER BY state`,
      [RUN_QUEUE],
    );
    assert.deepEqual(jobs, [{ state: 'completed', count: 12 }]);
    t.diagnostic(
      `chunk ${chunk} of the SIGKILLed worker resumed by another ${takeoverMs} ms after the kill (lease TTL ${LEASE_TTL_MS} ms): ${resumed}; ` +
        `${effect?.resumed} items done by a later attempt; the watcher saw ${progress.length} values`,
    );
  });
});
