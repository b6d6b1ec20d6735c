// Deploys are not retries (issue 22, point 8): two SIGTERMs hand a job back twice; pg-boss's
// retry_count rises by one per pickup all the same (its fence names attempts by it), and the key
// says how many of those pickups were hand-backs. Real processes, real pg-boss.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { CheckpointService } from '../../src/index.js';
import { toKeyView } from '../../src/http/checkpoint-http.views.js';
import type { CheckpointRow } from '../../src/checkpoint.repository.js';
import { QUEUE } from '../fixtures/queue-job.js';
import { createTestApp } from '../support/app.js';
import { sql } from '../support/database.js';
import { cleanUpAfterAll, workerBed } from '../support/workers.js';

cleanUpAfterAll();

describe('hand-backs on the key', () => {
  it('two SIGTERMs on retryLimit 1: retry_count 0 -> 2, hand_backs 2, no retry spent, completed', async (t: TestContext) => {
    const { schema, boss, startWorker } = await workerBed('handbacks', 'queue-worker');
    const env = { RETRY_LIMIT: '1' };
    // Three workers ready before the job is sent: each deploy hands it to one already running.
    let idle = [startWorker(env), startWorker(env), startWorker(env)];
    await Promise.all(idle.map((worker) => worker.waitFor((line) => line.startsWith('ready'))));
    const id = await boss.send(QUEUE, { count: 6000, batchDelayMs: 60 });
    assert.ok(id);
    const key = `${QUEUE}:${id}`;
    const nextHolder = () =>
      Promise.race(
        idle.map((worker) =>
          worker.waitFor((line) => line.startsWith(`start ${id}`)).then(() => worker),
        ),
      );
    let holder = await nextHolder();
    for (let deploy = 1; deploy <= 2; deploy++) {
      idle = idle.filter((worker) => worker !== holder);
      const current = holder;
      const batches = () => current.lines.filter((line) => line.startsWith(`batch ${id}`)).length;
      const seen = batches();
      await current.waitFor(() => batches() >= seen + 2);
      current.process.kill('SIGTERM');
      holder = await nextHolder();
      assert.equal((await current.exited).signal, 'SIGTERM', current.stderr);
    }
    const job = async () =>
      (
        await sql<{ state: string; retry_count: number; retry_limit: number }>(
          `SELECT state, retry_count, retry_limit FROM "${schema}_boss".job WHERE id = $1`,
          [id],
        )
      )[0];
    while ((await job())?.state !== 'completed') await new Promise((r) => setTimeout(r, 100));
    const row = (
      await sql<CheckpointRow>(`SELECT * FROM "${schema}".checkpoint WHERE key = $1`, [key])
    )[0];
    const boss12 = await job();
    t.diagnostic(
      `pg-boss: retry_count ${boss12?.retry_count}, retry_limit ${boss12?.retry_limit}; key: hand_backs ${row.hand_backs}, state ${row.state}`,
    );
    // pg-boss 12 counts every pickup of a started job; the key counts the hand-backs among them.
    assert.deepEqual(boss12, { state: 'completed', retry_count: 2, retry_limit: 3 });
    assert.equal(row.state, 'completed');
    assert.equal(row.hand_backs, 2);
    assert.equal((boss12?.retry_count ?? 0) - (row.hand_backs ?? 0), 0, 'no retry spent');
    // Shown in the key's detail (the HTTP view, the dashboard) and read by the library.
    assert.equal(toKeyView(row).handBacks, 2);
    const app = await createTestApp({ schema });
    try {
      assert.equal((await app.get(CheckpointService).find(key))?.handBacks, 2);
    } finally {
      await app.close();
    }
    await holder.kill('SIGTERM');
  });
});
