// Deploys (SIGTERM) of worker processes whose application owns pg-boss and stops it in its own
// onModuleDestroy (as the community wrappers do), for the decorator, a hand-written handler
// (CheckpointJobs.run) and @Checkpointed({ key }) under a wrapper-style worker.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { QUEUE } from '../fixtures/queue-job.js';
import {
  cleanUpAfterAll,
  finish,
  jobRow,
  MODES,
  setUp,
  startJob,
  stopLogOf,
} from '../support/borrowed.js';

cleanUpAfterAll();

for (const mode of MODES) {
  describe(`borrowed pg-boss stopped by the application, ${mode} handler`, () => {
    it('SIGTERM mid-job hands the job back during the shutdown, once, without spending a retry', async (t: TestContext) => {
      const { schema, boss, startWorker } = await setUp(`bterm_${mode}`, mode);
      const count = 3000;
      const { id, holder, spare } = await startJob(
        boss,
        await Promise.all([startWorker(), startWorker()]),
        count,
      );
      const before = await jobRow(schema, id);
      const stoppedAt = Date.now();
      holder.process.kill('SIGTERM');
      const exit = await holder.exited;
      const exitedMs = Date.now() - stoppedAt;
      // The hand-back committed during the holder's own shutdown, before it exited: its raised
      // retry limit is there (pg-boss failing the job on its own, by heartbeat or expiry,
      // raises none).
      const atExit = await jobRow(schema, id);
      assert.equal(atExit.retry_limit, before.retry_limit + 1, 'handed back before the exit');
      const started = await spare.waitFor((line) => line.startsWith(`start ${id}`));
      const resumedMs = Date.now() - stoppedAt;
      assert.equal(exit.signal, 'SIGTERM', `stopped by its own shutdown: ${holder.stderr}`);
      assert.equal(holder.stderr, '', 'and reported no error on the way');
      assert.equal(
        holder.lines.filter((line) => line.includes(`handed job ${id} of "${QUEUE}" back`)).length,
        1,
        'handed back exactly once',
      );
      assert.equal(stopLogOf(holder).length, 0, 'pg-boss never failed the job on its own');
      const lastBatch = holder.lines.filter((line) => line.startsWith(`batch ${id}`)).at(-1);
      assert.equal(Number(started.split(' ')[2]), Number(lastBatch?.split(' ')[2]) + 50);
      await finish(schema, id, count);
      const afterwards = await jobRow(schema, id);
      t.diagnostic(
        `${mode}: the holder handed the job back and exited ${exitedMs} ms after SIGTERM, resumed by the other worker after ${resumedMs} ms; ` +
          `retry_count ${before.retry_count} -> ${afterwards.retry_count}, retry_limit ${before.retry_limit} -> ${afterwards.retry_limit}`,
      );
      assert.equal(
        afterwards.retry_limit - afterwards.retry_count,
        before.retry_limit - before.retry_count,
        'retries left unchanged',
      );
    });
  });
}
