// Operators' control from another process: pause, resume, cancel and rewind, obeyed by a real
// worker process at a batch boundary; runs cancelled by run_id; claims refused while controlled.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import { PgBoss } from 'pg-boss';
import {
  CheckpointCancelledError,
  CheckpointEpochMovedError,
  CheckpointLeaseConflictError,
  CheckpointPausedError,
  CheckpointService,
  CheckpointValidationError,
} from '../../src/index.js';
import { createJobEffectTable, QUEUE, type ScreeningData } from '../fixtures/queue-job.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import { startSender } from '../support/workers.js';
import { Child } from '../support/process.js';
import { waitUntil } from '../support/wait.js';

const schema = uniqueSchema('control');
const workers = new Set<Child>();
let boss: PgBoss;
let operatorApp: INestApplicationContext;
let operator: CheckpointService;

before(async () => {
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createJobEffectTable(schema));
  // The operator: an application of its own (its own session), as an admin process would be.
  operatorApp = await createTestApp({ schema });
  operator = operatorApp.get(CheckpointService);
  boss = await startSender(schema);
});

after(async () => {
  await Promise.all([...workers].map((child) => child.kill('SIGKILL')));
  await boss.stop({ graceful: false });
  await operatorApp.close();
  await dropSchema(schema);
  await dropSchema(`${schema}_boss`);
});

async function startWorker(): Promise<Child> {
  const child = Child.start('queue-worker', { SCHEMA: schema, JOB_EVENTS: '1' });
  workers.add(child);
  await child.waitFor((line) => line.startsWith('ready'));
  return child;
}

async function send(data: ScreeningData): Promise<{ id: string; key: string }> {
  const id = await boss.send(QUEUE, data);
  assert.ok(id);
  return { id, key: `${QUEUE}:${id}` };
}

async function row(key: string) {
  const [found] = await sql<{
    state: string;
    control: string | null;
    current_index: string;
    epoch: string;
    attempt: number;
  }>(
    `SELECT state, control, current_index, epoch, attempt FROM "${schema}".checkpoint WHERE key = $1`,
    [key],
  );
  return found;
}

async function job(id: string) {
  const [found] = await sql<{ state: string; retry_count: number; retries_left: number }>(
    `SELECT state, retry_count, retry_limit - retry_count AS retries_left
       FROM "${schema}_boss".job WHERE id = $1`,
    [id],
  );
  return found;
}

async function effects(jobId: string) {
  const [counts] = await sql<{ rows: number; distinct: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct
       FROM "${schema}".job_effect WHERE job_id = $1`,
    [jobId],
  );
  return counts ?? { rows: 0, distinct: 0 };
}

describe('control from another process', () => {
  it('pause stops a worker at a batch boundary, a batch or two after it was asked; the job leaves the queue without a retry; resume finishes it, each item once', async (t: TestContext) => {
    const worker = await startWorker();
    const { id, key } = await send({ count: 3000, batchDelayMs: 100 });
    await waitUntil(
      async () => Number((await row(key))?.current_index ?? 0) >= 300,
      30_000,
      'progress',
    );

    assert.equal(await operator.pause(key), true);
    // Read after the pause committed: the batches committed since are at most what the worker
    // did before it heard it (NOTIFY: the batch in flight, perhaps the next; the lease renewal
    // every 10 s would let some 100 batches of 100 ms through).
    const atRequest = Number((await row(key))?.current_index);
    await worker.waitFor((line) => line === `stopped ${id} CheckpointPausedError`);
    await waitUntil(async () => (await row(key))?.state === 'paused', 60_000, 'the key paused');
    const atPause = await row(key);
    const after = (Number(atPause?.current_index) - atRequest) / 50;
    t.diagnostic(`pause obeyed after ${after} more batches of 100 ms`);
    assert.ok(after <= 3, `${after} batches committed after the pause was asked`);
    assert.equal(atPause?.control, 'pause');
    const pausedJob = await waitUntil(
      async () => {
        const found = await job(id);
        return found?.state === 'cancelled' ? found : undefined;
      },
      60_000,
      'the job to leave the queue',
    );
    assert.equal(pausedJob.retry_count, 0, 'pausing spends no retry');
    // The attempt ended and its job is out of the queue: nothing can move, and nothing did.
    assert.equal((await row(key))?.current_index, atPause?.current_index, 'nothing moves');
    assert.equal((await effects(id)).rows, Number(atPause?.current_index));

    assert.equal(await operator.resume(key), true);
    assert.equal(await operator.resume(key), false, 'a second resume has nothing to do');
    // The next attempt (2) resumes where the pause left it.
    await worker.waitFor((line) => line === `start ${id} ${atPause?.current_index} 2`, 60_000);
    await waitUntil(
      async () => (await row(key))?.state === 'completed',
      60_000,
      'the key to complete',
    );
    assert.deepEqual(await effects(id), { rows: 3000, distinct: 3000 });
    const finished = await job(id);
    assert.equal(finished?.state, 'completed');
    // pg-boss counts the fetch after a resume as a retry; the limit was raised to match.
    assert.equal(finished?.retries_left, pausedJob.retries_left, 'the pause spent no retry');
    await worker.kill('SIGTERM');
  });

  it('cancel stops a worker; the key is cancelled, the job too, and it never runs again', async () => {
    const worker = await startWorker();
    const { id, key } = await send({ count: 3000, batchDelayMs: 100 });
    await waitUntil(
      async () => Number((await row(key))?.current_index ?? 0) >= 200,
      30_000,
      'progress',
    );
    assert.equal(await operator.cancel(key), true);
    await waitUntil(async () => (await row(key))?.state === 'cancelled', 60_000, 'cancelled');
    await waitUntil(async () => (await job(id))?.state === 'cancelled', 60_000, 'job cancelled');
    const stoppedAt = (await row(key))?.current_index;
    assert.equal((await effects(id)).rows, Number(stoppedAt), 'committed work stays');

    // Even if the job is put back by hand, the key refuses to run.
    await boss.resume(QUEUE, id);
    await worker
      .waitFor((line) => line.includes(`job ${id} of "${QUEUE}" cancelled`), 60_000)
      .catch(() => undefined);
    await waitUntil(async () => (await job(id))?.state === 'cancelled', 60_000, 'refused again');
    assert.equal((await row(key))?.current_index, stoppedAt);
    assert.equal(await operator.resume(key), false, 'a cancelled key cannot be resumed');
    assert.equal(await operator.pause(key), false, 'nor paused');
    await worker.kill('SIGTERM');
  });

  it('rewind with a stale epoch is refused and changes nothing; with the right one the next attempt resumes there', async () => {
    const worker = await startWorker();
    const { id, key } = await send({ count: 2000, batchDelayMs: 60 });
    await waitUntil(
      async () => Number((await row(key))?.current_index ?? 0) >= 400,
      30_000,
      'progress',
    );
    const running = await operator.find(key);
    assert.ok(running);
    await assert.rejects(
      operator.rewind(key, 100, { expectedEpoch: running.epoch }),
      CheckpointLeaseConflictError,
      'a key with a live attempt cannot be rewound',
    );

    await operator.pause(key);
    await waitUntil(async () => (await row(key))?.state === 'paused', 60_000, 'paused');
    const before = await sql(`SELECT * FROM "${schema}".checkpoint WHERE key = $1`, [key]);
    const current = await operator.find(key);
    assert.ok(current);
    await assert.rejects(
      operator.rewind(key, 100, { expectedEpoch: current.epoch - 1 }),
      (error: unknown) =>
        error instanceof CheckpointEpochMovedError && error.actualEpoch === current.epoch,
    );
    await assert.rejects(
      operator.rewind(key, current.currentIndex + 50, { expectedEpoch: current.epoch }),
      CheckpointValidationError,
    );
    assert.deepEqual(
      await sql(`SELECT * FROM "${schema}".checkpoint WHERE key = $1`, [key]),
      before,
      'refused rewinds change nothing',
    );

    const epoch = await operator.rewind(key, 100, { expectedEpoch: current.epoch });
    assert.equal(epoch, current.epoch + 1);
    await assert.rejects(
      operator.rewind(key, 50, { expectedEpoch: current.epoch }),
      CheckpointEpochMovedError,
      'the same epoch twice: the second operator is refused',
    );
    assert.equal((await row(key))?.current_index, '100');
    await operator.resume(key);
    await worker.waitFor((each) => each === `start ${id} 100 ${current.attempt + 1}`, 60_000);
    await waitUntil(async () => (await row(key))?.state === 'completed', 60_000, 'completed');
    const counts = await effects(id);
    assert.equal(counts.distinct, 2000);
    await worker.kill('SIGTERM');
  });
});

describe('control in process', () => {
  it('a claim of a paused or cancelled key is refused with a typed error and does not run', async () => {
    const key = `in-process:${Math.random()}`;
    const first = await operator.claim(key, { totalItems: 10 });
    await operator.advance(key, first.epoch, { currentIndex: 5 });
    await operator.release(key, first.epoch);
    assert.equal(await operator.pause(key), true);
    assert.equal((await row(key))?.state, 'paused');
    await assert.rejects(operator.claim(key), CheckpointPausedError);
    assert.equal((await row(key))?.epoch, String(first.epoch), 'a refused claim bumps nothing');
    assert.equal(await operator.resume(key), true);
    const second = await operator.claim(key);
    assert.equal(second.resumeFrom, 5);
    await operator.release(key, second.epoch);
    assert.equal(await operator.cancel(key), true);
    await assert.rejects(operator.claim(key), CheckpointCancelledError);
    assert.equal((await row(key))?.state, 'cancelled');
  });

  it('a request the process did not hear is obeyed at its next lease renewal; the batch in flight commits', async (t: TestContext) => {
    const leaseTtlMs = 1500;
    const workerApp = await createTestApp({ schema, checkpoint: { leaseTtlMs } });
    try {
      const service = workerApp.get(CheckpointService);
      const key = `unheard:${Math.random()}`;
      const claim = await service.claim(key);
      // Set by SQL with no NOTIFY, as if this process's session was down when it was sent.
      const asked = Date.now();
      await sql(`UPDATE "${schema}".checkpoint SET control = 'pause' WHERE key = $1`, [key]);
      await service.advance(key, claim.epoch, { currentIndex: 3 });
      // No NOTIFY was sent: only a lease renewal can carry the request to the attempt.
      await waitUntil(() => Promise.resolve(claim.signal.aborted), 60_000, 'the request heard');
      t.diagnostic(
        `obeyed ${Date.now() - asked} ms after the request (renewal every ${leaseTtlMs / 3} ms)`,
      );
      assert.ok(claim.signal.reason instanceof CheckpointPausedError, String(claim.signal.reason));
      await service.release(key, claim.epoch);
      const found = await row(key);
      assert.equal(found?.state, 'paused');
      assert.equal(found?.current_index, '3');
    } finally {
      await workerApp.close();
    }
  });

  it('cancelling every chunk of a run (run_id) reaches each running attempt through LISTEN, before any lease renewal', async (t: TestContext) => {
    // A second application: its attempts hear the operator's request through LISTEN. Its lease
    // is renewed every 200 s: an attempt that hears it within the wait's bound heard NOTIFY.
    const workerApp = await createTestApp({ schema, checkpoint: { leaseTtlMs: 600_000 } });
    try {
      const service = workerApp.get(CheckpointService);
      const runId = `run-${Math.random()}`;
      const claims = await Promise.all(
        [0, 1, 2].map((n) => service.claim(`${runId}:${n}`, { totalItems: 100 })),
      );
      await sql(`UPDATE "${schema}".checkpoint SET run_id = $1 WHERE key LIKE $2`, [
        runId,
        `${runId}:%`,
      ]);
      const asked = Date.now();
      assert.equal(await operator.controlRun(runId, 'cancel'), 3);
      await waitUntil(
        () => Promise.resolve(claims.every((claim) => claim.signal.aborted)),
        60_000,
        'every attempt to hear',
      );
      t.diagnostic(`three attempts heard a run's cancel after ${Date.now() - asked} ms`);
      for (const claim of claims) {
        assert.ok(claim.signal.reason instanceof CheckpointCancelledError);
        await service.release(claim.key, claim.epoch);
        assert.equal((await row(claim.key))?.state, 'cancelled');
      }
    } finally {
      await workerApp.close();
    }
  });
});
