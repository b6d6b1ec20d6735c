// pg-boss workers that resume, across real processes: crashes, deploys, expiry, direct mode.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { PgBoss } from 'pg-boss';
import { QUEUE, type ScreeningData } from '../fixtures/queue-job.js';
import { sql } from '../support/database.js';
import { Child } from '../support/process.js';
import { cleanUpAfterAll, workerBed } from '../support/workers.js';
import { DEFAULT_LEASE_TTL_MS } from '../../src/checkpoint.constants.js';
import { waitUntil } from '../support/wait.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
cleanUpAfterAll();

/** A schema with the effect table, a pg-boss schema beside it, and a sender. */
const setUp = (prefix: string) => workerBed(prefix, 'queue-worker');

async function send(boss: PgBoss, data: ScreeningData): Promise<string> {
  const id = await boss.send(QUEUE, data);
  assert.ok(id);
  return id;
}

async function completedJobs(schema: string, ids: string[]): Promise<number> {
  const [row] = await sql<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${schema}".checkpoint WHERE state = 'completed' AND key = ANY($1)`,
    [ids.map((id) => `${QUEUE}:${id}`)],
  );
  return row?.n ?? 0;
}

async function effectCounts(schema: string, ids: string[]) {
  const [row] = await sql<{ rows: number; distinct: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT (job_id, item))::int AS distinct
       FROM "${schema}".job_effect WHERE job_id = ANY($1)`,
    [ids],
  );
  return row ?? { rows: 0, distinct: 0 };
}

describe('pg-boss workers', () => {
  it('three workers, ten jobs, a SIGKILL about every second: every job completes, each item once', async (t: TestContext) => {
    const { schema, boss, startWorker } = await setUp('chaos');
    const workers = [startWorker(), startWorker(), startWorker()];
    await Promise.all(workers.map((worker) => worker.waitFor((line) => line.startsWith('ready'))));

    const run = async (chaos: boolean) => {
      const ids = await Promise.all(
        Array.from({ length: 10 }, () => send(boss, { count: 2000, batchDelayMs: 60 })),
      );
      const started = Date.now();
      let kills = 0;
      while ((await completedJobs(schema, ids)) < ids.length) {
        // Liveness, not speed: a job stalled until pg-boss's expiry (900 s) fails this bound.
        if (Date.now() - started > 240_000) {
          const states = await sql(
            `SELECT key, state, current_index, attempt FROM "${schema}".checkpoint`,
          );
          const jobs = await sql(`SELECT id, state, retry_count FROM "${schema}_boss".job`);
          assert.fail(
            `jobs did not finish within four minutes:\n${JSON.stringify({ states, jobs })}`,
          );
        }
        await sleep(chaos ? 700 + Math.random() * 400 : 200);
        // Twenty kills, then the jobs finish: a kill every second for as long as the jobs run
        // kept them from finishing in four minutes next to two CPU burners (boots slow down).
        if (!chaos || kills >= 20 || (await completedJobs(schema, ids)) === ids.length) continue;
        // Only a worker that has booted: on a busy machine a boot outlasts a second, and killing
        // workers still booting would leave none to work.
        const booted = workers.flatMap((worker, index) =>
          worker.lines.some((line) => line.startsWith('ready')) ? [index] : [],
        );
        if (booted.length === 0) continue;
        const victim = booted[Math.floor(Math.random() * booted.length)];
        await workers[victim]?.kill('SIGKILL');
        kills += 1;
        workers[victim] = startWorker();
      }
      return { ids, ms: Date.now() - started, kills };
    };

    const calm = await run(false);
    const chaos = await run(true);
    t.diagnostic(
      `no crashes: ${calm.ms} ms; with ${chaos.kills} SIGKILLs: ${chaos.ms} ms (${(chaos.ms / calm.ms).toFixed(2)}x)`,
    );
    assert.ok(chaos.kills >= 10, `${chaos.kills} kills`);
    for (const ids of [calm.ids, chaos.ids]) {
      assert.deepEqual(await effectCounts(schema, ids), { rows: 20_000, distinct: 20_000 });
      for (const id of ids) assert.equal((await boss.getJobById(QUEUE, id))?.state, 'completed');
    }
  });

  it('SIGTERM hands the job to another worker at the next item; four deploys on retryLimit 1', async (t: TestContext) => {
    const { schema, boss, startWorker } = await setUp('deploy');
    const env = { RETRY_LIMIT: '1' };
    // Every worker is up before the job is sent: a worker booting while the job runs (slow on a
    // busy machine) could let the holder finish before the next deploy.
    const workers = Array.from({ length: 5 }, () => startWorker(env));
    await Promise.all(workers.map((worker) => worker.waitFor((line) => line.startsWith('ready'))));
    const id = await send(boss, { count: 8000, batchDelayMs: 60 });
    let { child: holder } = await Child.firstOf(workers, (line) => line.startsWith(`start ${id}`));
    const handoffs: number[] = [];
    for (let deploy = 1; deploy <= 4; deploy++) {
      const current = holder;
      const batchesSoFar = () =>
        current.lines.filter((line) => line.startsWith(`batch ${id}`)).length;
      const seen = batchesSoFar();
      await current.waitFor(() => batchesSoFar() >= seen + 3);
      const stoppedAt = Date.now();
      current.process.kill('SIGTERM');
      const { child: next, line: started } = await Child.firstOf(
        workers.filter((worker) => !worker.lines.some((line) => line.startsWith(`start ${id}`))),
        (line) => line.startsWith(`start ${id}`),
      );
      handoffs.push(Date.now() - stoppedAt);
      const exit = await current.exited;
      // After a graceful close Nest re-raises the signal, so a clean stop ends by SIGTERM.
      assert.equal(
        exit.signal,
        'SIGTERM',
        `the worker stopped by its own shutdown: ${current.stderr}`,
      );
      assert.equal(current.stderr, '', 'and reported no error on the way');
      const lastBatch = current.lines.filter((line) => line.startsWith(`batch ${id}`)).at(-1) ?? '';
      const resumedAt = Number(started.split(' ')[2]);
      assert.equal(
        resumedAt,
        Number(lastBatch.split(' ')[2]) + 50,
        'resumed at the item after the last batch',
      );
      holder = next;
    }
    await waitUntil(
      async () => (await completedJobs(schema, [id])) === 1,
      60_000,
      'the job to complete',
    );
    t.diagnostic(`handoff after SIGTERM (ms): ${handoffs.join(', ')}`);
    // Handed over, not left to the lease's expiry (how fast goes to the bench: a bound in
    // seconds fails on a busy machine).
    assert.ok(
      handoffs.every((ms) => ms < DEFAULT_LEASE_TTL_MS / 2),
      `handoffs ${handoffs.join(', ')} ms`,
    );
    assert.deepEqual(await effectCounts(schema, [id]), { rows: 8000, distinct: 8000 });
    const job = await boss.getJobById(QUEUE, id);
    assert.equal(job?.state, 'completed');
  });

  it('fences a worker whose job expired while it still ran; the new attempt finishes', async () => {
    const { schema, boss, startWorker } = await setUp('expiry');
    const env = { EXPIRE_SECONDS: '2' };
    const stale = startWorker(env);
    await stale.waitFor((line) => line.startsWith('ready'));
    const id = await send(boss, {
      count: 600,
      batchDelayMs: 20,
      slowBatch: { index: 3, ms: 5000 },
    });
    await stale.waitFor((line) => line === `batch ${id} 150`);
    const fresh = startWorker(env);
    // pg-boss's supervision re-queues the expired job; a hang bound, as long as a busy machine
    // needs (three suites at once next to two CPU burners took over 120 s).
    const resumed = await fresh.waitFor((line) => line.startsWith(`start ${id}`), 300_000);
    assert.equal(resumed.split(' ')[2], '150');
    await fresh.waitFor((line) => line === `done ${id}`);
    await stale.waitFor((line) => line.startsWith(`stopped ${id}`));
    assert.equal(
      stale.lines.find((line) => line.startsWith(`stopped ${id}`)),
      `stopped ${id} CheckpointFencedError`,
    );
    await waitUntil(
      async () => (await completedJobs(schema, [id])) === 1,
      60_000,
      'the job to complete',
    );
    assert.deepEqual(await effectCounts(schema, [id]), { rows: 600, distinct: 600 });
    const [staleRows] = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".job_effect WHERE job_id = $1 AND item >= 150 AND attempt = 1`,
      [id],
    );
    assert.equal(staleRows?.n, 0, "the stale worker's slow batch rolled back");
  });
});
