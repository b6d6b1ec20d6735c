// 16. Balanced chunks: how runs.start() with chunkSize 'auto' deals a run out to the live
// workers of its queue.
//
// Three applications, each a worker of one queue (the run_worker heartbeat counts each as a live
// worker: in production they would be three processes), start runs of several sizes through
// the public API, the first before any run on the queue was measured (plan() deals by the live
// workers; later ones also know the per-item time of the runs done). The chunks as stored at
// start are read back, and the workers finish every run.
import { Injectable } from '@nestjs/common';
import type { Job } from 'pg-boss';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  Checkpointed,
  CheckpointRuns,
  type CheckpointContext,
  type RunChunkData,
} from '../src/index.js';
import { bootApp, type BenchApp } from './app.js';
import type { BenchEnv } from './env.js';
import { sleep } from './harness.js';
import { count, target, type Json, type Section } from './report.js';

const BALANCE_QUEUE = 'bench-balance';
const WORKERS = 3;
/** The issue's case first: 100,000 items over 3 workers once gave 4 chunks, the last of 1 item. */
const SIZES = [100_000, 100_001, 99_999, 1_000_000, 1000, 17, 4, 3, 2];
const FINISH_WITHIN_MS = 300_000;

@Injectable()
export class BalanceJob {
  @Checkpointed({ queue: BALANCE_QUEUE, batchSize: 1000, pollingIntervalSeconds: 0.5 })
  async work(
    job: Job<RunChunkData<number>>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<void> {
    for await (const batch of ctx.batches(job.data.items)) void batch;
  }
}

export async function measureBalance(env: BenchEnv): Promise<Section> {
  const schema = `${env.schema}_balance`;
  await env.raw.query(`CREATE SCHEMA "${schema}"`);
  const apps: BenchApp[] = [];
  try {
    for (let i = 0; i < WORKERS; i++) {
      apps.push(
        await bootApp({
          url: env.url,
          schema,
          poolSize: 3,
          providers: [BalanceJob],
          checkpoint: {
            boss: {
              connectionString: env.url,
              schema: `${schema}_boss`,
              max: 2,
              supervise: false,
              schedule: false,
              migrate: i === 0,
            },
          },
        }),
      );
    }
    const runs = apps[0].get(CheckpointRuns);
    const rows: string[][] = [];
    const raw: Record<string, Json> = {};
    const uneven: string[] = [];
    const idle: string[] = [];
    const unlike: string[] = [];
    for (const total of SIZES) {
      const plan = await runs.plan(BALANCE_QUEUE, total);
      const id = `balance-${total}`;
      const items = Array.from({ length: total }, (_, i) => i);
      const run = await runs.start(BALANCE_QUEUE, {
        id,
        items,
        chunkSize: 'auto',
        // Every size goes to the queue, the tiny ones too: the rule is what is measured.
        directThreshold: 0,
      });
      const { rows: chunks } = await env.raw.query<{ size: number }>(
        `SELECT total_items::int AS size FROM "${schema}".checkpoint WHERE run_id = $1 ORDER BY run_chunk`,
        [id],
      );
      const sizes = chunks.map((chunk) => chunk.size);
      const smallest = Math.min(...sizes);
      const largest = Math.max(...sizes);
      const idleWorkers = Math.max(0, Math.min(plan.workers, total) - sizes.length);
      const covered = sizes.reduce((sum, size) => sum + size, 0);
      if (largest - smallest > 1 || covered !== total) uneven.push(count(total));
      if (idleWorkers > 0) idle.push(count(total));
      if (run.chunkCount !== plan.chunkCount || sizes.length !== plan.chunkCount)
        unlike.push(count(total));
      rows.push([
        count(total),
        String(plan.workers),
        count(sizes.length),
        smallest === largest ? count(smallest) : `${count(smallest)}-${count(largest)}`,
        String(idleWorkers),
        plan.reason,
      ]);
      raw[id] = { total, workers: plan.workers, sizes, reason: plan.reason };
    }
    await finish(
      runs,
      SIZES.map((total) => `balance-${total}`),
    );
    const issueCase = raw[`balance-${SIZES[0]}`] as { sizes: number[] };
    return {
      id: '16',
      title: 'Balanced chunks',
      about:
        `Three applications work one queue (each a live worker in the run_worker heartbeat), ` +
        `and runs of each size start one after the other through runs.start() with chunkSize ` +
        `'auto'. The first ones start before any run of the queue was measured (plan() deals ` +
        `by the live workers); the workers finish each run as it comes, and later plans also ` +
        `have the per-item time of the runs done. The sizes are the chunks as runs.start() ` +
        `stored them. Idle: live workers the rule left without a chunk (at most one per item).`,
      columns: ['items', 'live workers', 'chunks', 'items per chunk', 'idle', "plan()'s reason"],
      rows,
      targets: [
        target(
          `plan(queue, 100,000) with 3 live workers: ${issueCase.sizes.length} chunks of ` +
            `${issueCase.sizes.map(count).join(' / ')} (no chunk of 1 item)`,
          issueCase.sizes.length === WORKERS &&
            Math.max(...issueCase.sizes) - Math.min(...issueCase.sizes) <= 1,
        ),
        target(
          `the chunks of every run differ by at most one item and cover it: ` +
            `${SIZES.length - uneven.length} of ${SIZES.length} runs` +
            (uneven.length > 0 ? ` (uneven: ${uneven.join(', ')})` : ''),
          uneven.length === 0,
        ),
        target(
          `no live worker left idle that the rule meant to use: ${SIZES.length - idle.length} ` +
            `of ${SIZES.length} runs` +
            (idle.length > 0 ? ` (idle workers at ${idle.join(', ')} items)` : ''),
          idle.length === 0,
        ),
        target(
          `runs.start() deals the chunks plan() announced: ${SIZES.length - unlike.length} of ` +
            `${SIZES.length} runs`,
          unlike.length === 0,
        ),
      ],
      notes: [],
      raw,
    };
  } finally {
    for (const app of apps.reverse()) await app.close();
    await env.raw.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await env.raw.query(`DROP SCHEMA IF EXISTS "${schema}_boss" CASCADE`);
  }
}

/** Waits until the workers have completed every run (a hang bound, not a measurement). */
async function finish(runs: CheckpointRuns, ids: string[]): Promise<void> {
  const deadline = Date.now() + FINISH_WITHIN_MS;
  for (const id of ids) {
    while ((await runs.get(id))?.state !== 'completed') {
      if (Date.now() > deadline) throw new Error(`run ${id} did not complete in 300 s`);
      await sleep(100);
    }
  }
}
