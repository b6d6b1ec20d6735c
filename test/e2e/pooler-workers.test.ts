// pg-boss workers (test/fixtures/queue-worker.ts) and an operator process, all through a real
// PgBouncer in transaction pooling without a direct URL (the hardest set-up: no LISTEN, no lease
// session), its server connections recycled every 2 s: SIGKILL, pause, resume and cancel from
// another process, watch() to completion. pg-boss itself runs through it too.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import type { INestApplicationContext } from '@nestjs/common';
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import type { PgBoss } from 'pg-boss';
import { CheckpointService, type CheckpointProgress } from '../../src/index.js';
import { QUEUE } from '../fixtures/queue-job.js';
import { createTestApp } from '../support/app.js';
import { sql } from '../support/database.js';
import { PgBouncer } from '../support/pgbouncer.js';
import { Child } from '../support/process.js';
import { cleanUpAfterAll, workerBed } from '../support/workers.js';
import { waitUntil } from '../support/wait.js';

cleanUpAfterAll();
const LEASE_TTL_MS = 3000;
const CONNECTION = { pooling: 'transaction' } as const;

let bouncer: PgBouncer;
let bed: Awaited<ReturnType<typeof workerBed>>;
let operatorApp: INestApplicationContext;
let operator: CheckpointService;

before(async () => {
  bouncer = await PgBouncer.recycling(10);
  bed = await workerBed('pool_workers', 'queue-worker', {
    DATABASE_URL: bouncer.url,
    CHECKPOINT_OPTIONS: JSON.stringify({ connection: CONNECTION }),
    LEASE_TTL_MS: String(LEASE_TTL_MS),
  });
  // The operator: a process of its own through the same pooler.
  operatorApp = await createTestApp({
    schema: bed.schema,
    url: bouncer.url,
    poolSize: 3,
    checkpoint: { connection: CONNECTION, leaseTtlMs: LEASE_TTL_MS },
  });
  operator = operatorApp.get(CheckpointService);
});

after(async () => {
  await operatorApp?.close();
  await bouncer?.stop();
});

/** The workers of the running test, killed when it ends (a failed test leaves none behind). */
const current = new Set<Child>();
afterEach(async () => {
  await Promise.all([...current].map((child) => child.kill('SIGKILL')));
  current.clear();
});

async function worker(env: Record<string, string> = {}): Promise<Child> {
  const child = bed.startWorker(env);
  current.add(child);
  await child.waitFor((line) => line.startsWith('ready'), 60_000);
  return child;
}

async function send(boss: PgBoss, count: number, batchDelayMs: number) {
  const id = await boss.send(QUEUE, { count, batchDelayMs });
  assert.ok(id);
  return { id, key: `${QUEUE}:${id}` };
}

async function row(key: string) {
  const [found] = await sql<{ state: string; current_index: string; attempt: number }>(
    `SELECT state, current_index, attempt FROM "${bed.schema}".checkpoint WHERE key = $1`,
    [key],
  );
  return found;
}

async function effects(jobId: string) {
  const [counts] = await sql<{ rows: number; distinct: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct
       FROM "${bed.schema}".job_effect WHERE job_id = $1`,
    [jobId],
  );
  return counts;
}

async function jobState(id: string): Promise<string | undefined> {
  const [found] = await sql<{ state: string }>(
    `SELECT state FROM "${bed.schema}_boss".job WHERE id = $1`,
    [id],
  );
  return found?.state;
}

const progressed = (key: string, items: number) =>
  waitUntil(async () => Number((await row(key))?.current_index ?? 0) >= items, 60_000, 'progress');

const completed = (key: string) =>
  waitUntil(async () => (await row(key))?.state === 'completed', 120_000, `${key} to complete`);

describe('pg-boss workers through a transaction pooler without a direct URL', () => {
  it('SIGKILL of the worker: the other resumes the job once its lease expired; each item once', async (t: TestContext) => {
    const workers = [await worker(), await worker()];
    const { id, key } = await send(bed.boss, 3000, 40);
    const { child: holder } = await Child.firstOf(workers, (line) =>
      line.startsWith(`start ${id} `),
    );
    const other = workers.find((child) => child !== holder) as Child;
    await progressed(key, 300);
    await holder.kill('SIGKILL');
    const killed = Date.now();
    const resumed = await other.waitFor((line) => line.startsWith(`start ${id} `), 60_000);
    t.diagnostic(
      `resumed by the other worker ${Date.now() - killed} ms after the kill: ${resumed}`,
    );
    assert.ok(Number(resumed.split(' ')[2]) >= 300, 'resumed past the committed progress');
    await completed(key);
    assert.deepEqual(await effects(id), { rows: 3000, distinct: 3000 });
    assert.equal(
      await waitUntil(
        async () => (await jobState(id)) === 'completed' && 'completed',
        30_000,
        'the job',
      ),
      'completed',
    );
  });

  it('SIGTERM of the worker mid-job: it stops at a batch boundary and hands the job back; the other finishes it, each item once, no retry spent, no job failed', async (t: TestContext) => {
    const workers = [await worker(), await worker()];
    // Long enough (120 batches of at least 40 ms) to be mid-job when the signal lands, however
    // slowly this process reads the worker's line.
    const { id, key } = await send(bed.boss, 6000, 40);
    const { child: holder } = await Child.firstOf(workers, (line) => line === `batch ${id} 300`);
    const other = workers.find((child) => child !== holder) as Child;
    holder.process.kill('SIGTERM');
    const signalled = Date.now();
    const started = await other.waitFor((line) => line.startsWith(`start ${id} `));
    const handoffMs = Date.now() - signalled;
    const exit = await holder.exited;
    // Nest's shutdown hook re-raises the signal once the application closed.
    assert.equal(exit.signal, 'SIGTERM', `a clean stop: ${holder.stderr}`);
    assert.ok(!holder.lines.includes(`done ${id}`), 'the holder stopped before the end');
    assert.ok(holder.lines.includes(`stopped ${id} CheckpointAbortedError`));
    // It stopped after committing the batch it was in: the other starts right after it.
    const lastBatch = holder.lines.filter((line) => line.startsWith(`batch ${id} `)).at(-1) ?? '';
    const stoppedAt = Number(lastBatch.split(' ')[2]) + 50;
    assert.equal(Number(started.split(' ')[2]), stoppedAt);
    await completed(key);
    assert.deepEqual(await effects(id), { rows: 6000, distinct: 6000 });
    const [job] = await sql<{ state: string; spent: number }>(
      `SELECT state, retry_count - (retry_limit - 20) AS spent FROM "${bed.schema}_boss".job WHERE id = $1`,
      [id],
    );
    assert.deepEqual(job, { state: 'completed', spent: 0 });
    t.diagnostic(
      `stopped at item ${stoppedAt} of 6000; the other worker started it ${handoffMs} ms after the SIGTERM`,
    );
  });

  it('pause, resume and cancel from another process reach the worker by the shared poll; watch() follows to completion', async (t: TestContext) => {
    // A 30 s lease: renewed every 10 s, so a request obeyed within 5 s came by the poll.
    const child = await worker({ LEASE_TTL_MS: '30000' });
    const { id, key } = await send(bed.boss, 8000, 60);
    await progressed(key, 300);
    const seen: CheckpointProgress[] = [];
    const watched = new Promise<void>((resolve, reject) =>
      operator.watch(key).subscribe({
        next: (progress) => seen.push(progress),
        error: reject,
        complete: resolve,
      }),
    );
    const asked = Date.now();
    assert.equal(await operator.pause(key), true);
    await child.waitFor((line) => line === `stopped ${id} CheckpointPausedError`, 60_000);
    const pausedAfter = Date.now() - asked;
    await waitUntil(async () => (await row(key))?.state === 'paused', 60_000, 'paused');
    assert.equal(await operator.resume(key), true);
    await child.waitFor((line) => line.startsWith(`start ${id} `) && line.endsWith(' 2'), 60_000);
    await watched;
    const last = seen.at(-1);
    assert.equal(last?.state, 'completed');
    assert.equal(last?.processedItems, 8000);
    for (let i = 1; i < seen.length; i++)
      assert.ok((seen[i]?.processedItems ?? 0) >= (seen[i - 1]?.processedItems ?? 0));
    assert.deepEqual(await effects(id), { rows: 8000, distinct: 8000 });

    const cancelled = await send(bed.boss, 8000, 60);
    await progressed(cancelled.key, 300);
    const cancelAsked = Date.now();
    assert.equal(await operator.cancel(cancelled.key), true);
    await child.waitFor(
      (line) => line === `stopped ${cancelled.id} CheckpointCancelledError`,
      60_000,
    );
    const cancelledAfter = Date.now() - cancelAsked;
    await waitUntil(
      async () => (await row(cancelled.key))?.state === 'cancelled',
      60_000,
      'cancelled',
    );
    t.diagnostic(
      `pause obeyed after ${pausedAfter} ms, cancel after ${cancelledAfter} ms (poll every 500 ms, batches 60 ms, lease renewal every 10 s); watch saw ${seen.length} changes`,
    );
  });
});
