// Crashes (SIGKILL) of worker processes whose application owns pg-boss, for the decorator, a
// hand-written handler (CheckpointJobs.run) and @Checkpointed({ key }) under a wrapper-style
// worker.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { cleanUpAfterAll, finish, MODES, setUp, startJob } from '../support/borrowed.js';

cleanUpAfterAll();

for (const mode of MODES) {
  describe(`borrowed pg-boss stopped by the application, ${mode} handler`, () => {
    it('SIGKILL mid-job: another worker resumes it', async (t: TestContext) => {
      const { schema, boss, startWorker } = await setUp(`bkill_${mode}`, mode);
      const count = 3000;
      const {
        id,
        holder: victim,
        spare,
      } = await startJob(boss, await Promise.all([startWorker(), startWorker()]), count);
      const killedAt = Date.now();
      await victim.kill('SIGKILL');
      const started = await spare.waitFor((line) => line.startsWith(`start ${id}`), 60_000);
      const resumedMs = Date.now() - killedAt;
      const lastBatch = victim.lines.filter((line) => line.startsWith(`batch ${id}`)).at(-1);
      assert.ok(Number(started.split(' ')[2]) >= Number(lastBatch?.split(' ')[2]));
      await finish(schema, id, count);
      t.diagnostic(`${mode}: resumed ${resumedMs} ms after SIGKILL of its worker`);
      // The dead-worker reaper hands back every running row that records a queue and job id,
      // whichever handler ran it: without it the job would wait for pg-boss's 15-minute
      // expiry, so resuming within the 60 s wait above proves the hand-back. How fast it is
      // (1-1.6 s on a calm machine) is measured by the bench's takeover section, not here.
    });
  });
}
