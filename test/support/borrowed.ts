// Worker processes of an application that owns pg-boss and stops it in its own onModuleDestroy
// (as the community wrappers do), lending it to CheckpointModule (test/fixtures/borrowed-worker).
import assert from 'node:assert/strict';
import { PgBoss } from 'pg-boss';
import { QUEUE } from '../fixtures/queue-job.js';
import { sql } from './database.js';
import { Child } from './process.js';
import { workerBed } from './workers.js';
import { waitUntil } from './wait.js';

export { cleanUpAfterAll } from './workers.js';

/** The handler the workers run: see test/fixtures/borrowed-worker.ts. */
export type Mode = 'decorator' | 'jobs' | 'key';
export const MODES: readonly Mode[] = ['decorator', 'jobs', 'key'];

export async function setUp(prefix: string, mode: Mode) {
  const bed = await workerBed(prefix, 'borrowed-worker', { MODE: mode, LOG_LEVELS: 'all' });
  const startWorker = async () => {
    const child = bed.startWorker();
    await child.waitFor((line) => line.startsWith('ready'));
    return child;
  };
  return { schema: bed.schema, boss: bed.boss, startWorker };
}

export async function jobRow(schema: string, id: string) {
  const [row] = await sql<{ state: string; retry_count: number; retry_limit: number }>(
    `SELECT state, retry_count, retry_limit FROM "${schema}_boss".job WHERE id = $1`,
    [id],
  );
  assert.ok(row, `job ${id} exists`);
  return row;
}

export async function effectCounts(schema: string, id: string) {
  const [row] = await sql<{ rows: number; distinct: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT item)::int AS distinct
       FROM "${schema}".job_effect WHERE job_id = $1`,
    [id],
  );
  return row ?? { rows: 0, distinct: 0 };
}

/**
 * Sends a job to two ready workers and waits until one of them has done a few batches of it:
 * that one is the holder, the other the spare (started first, so no boot time is measured).
 */
export async function startJob(boss: PgBoss, workers: [Child, Child], count: number) {
  const id = await boss.send(QUEUE, { count, batchDelayMs: 60 });
  assert.ok(id);
  const { child: holder } = await Child.firstOf(workers, (line) => line.startsWith(`start ${id}`));
  const spare = holder === workers[0] ? workers[1] : workers[0];
  await holder.waitFor(
    () => holder.lines.filter((line) => line.startsWith(`batch ${id}`)).length >= 3,
  );
  return { id, holder, spare };
}

export async function finish(schema: string, id: string, count: number) {
  await waitUntil(
    async () => (await jobRow(schema, id)).state === 'completed',
    60_000,
    `job ${id} to complete`,
  );
  assert.deepEqual(await effectCounts(schema, id), { rows: count, distinct: count });
  const [checkpoint] = await sql<{ state: string; queue: string; job_id: string }>(
    `SELECT state, queue, job_id FROM "${schema}".checkpoint WHERE key = $1`,
    [`${QUEUE}:${id}`],
  );
  assert.deepEqual(checkpoint, { state: 'completed', queue: QUEUE, job_id: id });
}

/** pg-boss's own failure of an active job at stop, which the library's sequence prevents. */
export function stopLogOf(child: Child): string[] {
  return [...child.lines, child.stderr].filter((line) => line.includes('shut down while active'));
}
