import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { PgBoss } from 'pg-boss';
import { CheckpointError } from '../checkpoint.errors.js';
import { CHECKPOINT_BOSS } from '../checkpoint.constants.js';
import { CheckpointRunner } from '../attempt/checkpoint.runner.js';
import { CheckpointService } from '../checkpoint.service.js';
import { CheckpointQueues, toOutput } from '../boss/checkpoint-queues.js';
import {
  describeInterruption,
  InterruptionPlan,
  randomPlan,
  type FiredInterruption,
  type Interruption,
} from './interruptions.js';
import { diffOutcomes, type Outcome } from './outcome-diff.js';
import { TestSchema } from './test-schema.js';
import { testingMessages } from './testing.messages.js';

/** Options of `assertResumable()`. */
export interface ResumableOptions {
  /**
   * How many interruptions (at random boundaries, from `seed`), or where exactly. Default 3.
   */
  interruptions?: number | readonly Interruption[];
  /** Seed of the random interruptions and batch sizes (default 1): the same seed, the same plan. */
  seed?: number;
  /**
   * What the call left in the database, read after each run: rows are compared item by item
   * (grouped by `by`), anything else as a whole. Leave out what differs between any two runs
   * (generated ids, timestamps, the attempt number).
   */
  snapshot?: () => Promise<unknown>;
  /** The field that names a row's item in the snapshot (default: each row's first field). */
  by?: string;
  /**
   * Give each resumed attempt another batch size (half to twice the first batch's; default
   * true), as an adaptive batch size or a redeploy with another size would.
   */
  varyBatchSize?: boolean;
}

/** What `assertResumable()` found when both runs agreed. */
export interface ResumableReport<R> {
  result: R;
  /** The interruptions of the interrupted run, in order. */
  interruptions: FiredInterruption[];
  /** Items and batches of the uninterrupted run. */
  items: number;
  batches: number;
  seed: number;
}

/** The outcome of a call changed when it was interrupted and resumed; the message says how. */
export class CheckpointNotResumableError extends CheckpointError {
  constructor(
    message: string,
    /** The snapshot's items that differ. */
    readonly items: string[],
    /** The interruption after which the outcome first differs (1-based). */
    readonly interruption: FiredInterruption | undefined,
  ) {
    super(message);
  }
}

/** What `drain()` ran. */
export interface DrainReport {
  completed: number;
  failed: number;
}

/**
 * Crash injection, the resumability check and `drain()` for tests of `@Checkpointed()` handlers
 * (see docs/testing.md). Get it from the testing module: `moduleRef.get(CheckpointTesting)`.
 */
@Injectable()
export class CheckpointTesting implements OnModuleInit {
  private runner!: CheckpointRunner;

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly service: CheckpointService,
    private readonly queues: CheckpointQueues,
    private readonly schema: TestSchema,
    @Inject(CHECKPOINT_BOSS) private readonly boss: PgBoss | null,
  ) {}

  onModuleInit(): void {
    // The runner is the checkpoint module's own, not exported to applications.
    this.runner = this.moduleRef.get(CheckpointRunner, { strict: false });
  }

  /**
   * Runs `call` with its attempts interrupted at the given boundaries, the way a killed process
   * stops (the open batch rolled back, nothing completed, failed or released), each time resumed
   * as a new attempt would (a new claim, a new epoch, the method called again from the resume
   * point), all within the one call. Resolves with the call's result and the interruptions.
   */
  async interrupt<R>(
    call: () => Promise<R>,
    interruptions: readonly Interruption[],
    batchSizes: readonly number[] = [],
  ): Promise<{ result: R; interruptions: FiredInterruption[] }> {
    const plan = new InterruptionPlan(interruptions, batchSizes);
    this.runner.interrupter = plan;
    try {
      const result = await call();
      return { result, interruptions: plan.fired };
    } finally {
      this.runner.interrupter = undefined;
    }
  }

  /**
   * Runs `call` twice from the same database: once as it is, once interrupted N times and
   * resumed; compares the results and the `snapshot`s. On a difference, throws
   * CheckpointNotResumableError naming the items that differ and the interruption after which
   * they first differ (found by running again with fewer interruptions). The database is put back
   * as it was before each run (the testing schema's tables); the call must not depend on state
   * kept in memory between calls.
   */
  async assertResumable<R>(
    call: () => Promise<R>,
    options: ResumableOptions = {},
  ): Promise<ResumableReport<R>> {
    const seed = options.seed ?? 1;
    const snapshot = options.snapshot ?? (() => Promise.resolve(null));
    const saved = await this.schema.save();
    try {
      const batches: Array<{ startIndex: number; items: number }> = [];
      const stop = this.service.observers.add({
        batchEnded: (event) => {
          if (event.committed === true) batches.push(event);
        },
      });
      let clean: Outcome & { result: R };
      try {
        const result = await call();
        clean = { result, snapshot: await snapshot() };
      } finally {
        stop();
      }
      if (batches.length === 0) throw new CheckpointError(testingMessages.noBatches());
      const items = Math.max(...batches.map((batch) => batch.startIndex + batch.items));
      const plan = planOf(options, items, batches[0]?.items ?? 1, seed);
      const run = async (count: number) => {
        await saved.restore();
        const { result, interruptions } = await this.interrupt(
          call,
          plan.points.slice(0, count),
          plan.batchSizes,
        );
        return { outcome: { result, snapshot: await snapshot() }, interruptions };
      };
      const full = await run(plan.points.length);
      const diff = diffOutcomes(clean, full.outcome, options.by);
      if (diff.lines.length === 0) {
        return {
          result: full.outcome.result,
          interruptions: full.interruptions,
          items,
          batches: batches.length,
          seed,
        };
      }
      // The first interruption after which the outcome differs: fewer interruptions, same plan.
      let first = full.interruptions.at(-1);
      for (let count = 1; count < full.interruptions.length; count++) {
        const fewer = await run(count);
        if (diffOutcomes(clean, fewer.outcome, options.by).lines.length > 0) {
          first = fewer.interruptions.at(-1);
          break;
        }
      }
      throw new CheckpointNotResumableError(
        [
          `not resumable: interrupted ${full.interruptions.length} time(s) (seed ${seed}), the ` +
            `call's outcome differs from the uninterrupted run`,
          ...diff.lines,
          first === undefined
            ? 'it differs without any interruption having happened'
            : `it first differs after ${describeInterruption(first)}`,
          'interruptions:',
          ...full.interruptions.map((fired) => `  ${describeInterruption(fired)}`),
        ].join('\n'),
        diff.items,
        first,
      );
    } finally {
      await saved.drop();
    }
  }

  /**
   * Runs every job of `queue` to completion in the caller, chunks of runs included, each through
   * the queue's `@Checkpointed({ queue })` method as its worker would run it, until the queue has
   * none left that could start now. A job that fails is failed in pg-boss (and fetched again when
   * it has retries left). The testing module's workers do not poll: only `drain()` runs jobs.
   */
  async drain(queue: string): Promise<DrainReport> {
    const boss = this.boss;
    if (boss === null) throw new CheckpointError(testingMessages.noBoss(queue));
    const report: DrainReport = { completed: 0, failed: 0 };
    for (;;) {
      const [job] = await boss.fetch<object>(queue, { batchSize: 1, includeMetadata: true });
      if (job === undefined) break;
      try {
        const result = await this.queues.runFetched(job);
        await boss.complete(queue, job.id, toOutput(result) ?? undefined);
        report.completed += 1;
      } catch (error) {
        await boss.fail(queue, job.id, { message: (error as Error).message });
        report.failed += 1;
      }
    }
    return report;
  }
}

function planOf(
  options: ResumableOptions,
  items: number,
  batchSize: number,
  seed: number,
): { points: readonly Interruption[]; batchSizes: number[] } {
  const wanted = options.interruptions ?? 3;
  const vary = options.varyBatchSize ?? true;
  if (typeof wanted === 'number') {
    if (!Number.isSafeInteger(wanted) || wanted < 1) {
      throw new CheckpointError(testingMessages.badInterruptions(wanted));
    }
    const plan = randomPlan(wanted, items, batchSize, seed);
    return { points: plan.points, batchSizes: vary ? plan.batchSizes : [] };
  }
  if (!Array.isArray(wanted) || wanted.length === 0) {
    throw new CheckpointError(testingMessages.badInterruptions(wanted));
  }
  const sizes = randomPlan(wanted.length, items, batchSize, seed).batchSizes;
  return { points: wanted, batchSizes: vary ? sizes : [] };
}
