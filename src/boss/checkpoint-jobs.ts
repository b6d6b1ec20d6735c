import { Injectable } from '@nestjs/common';
import type { Job } from 'pg-boss';
import { batchSizeProblems } from '../batch-sizer.js';
import { CheckpointValidationError } from '../checkpoint.errors.js';
import { messages } from '../checkpoint.messages.js';
import type { CheckpointedMethod } from '../attempt/attempt.interfaces.js';
import { assertKey } from '../checkpoint.validation.js';
import type { CheckpointContext, CheckpointedOptions } from '../checkpointed.interface.js';
import { bossJobOf } from './boss-job.js';
import { CheckpointQueues } from './checkpoint-queues.js';

/** Options of `CheckpointJobs.run()`: the decorator's batch options, for one job. */
export interface RunJobOptions<T> extends Pick<
  CheckpointedOptions,
  'batchSize' | 'transactional' | 'onInputChange' | 'onCompleted'
> {
  /** The checkpoint key (default `<queue>:<job id>`; pg-boss keeps the id across retries). */
  key?: (job: Job<T>) => string;
  /** A value derived from the job's input (hashed and stored); a resume compares it. */
  fingerprint?: (job: Job<T>) => unknown;
  /**
   * Complete the pg-boss job in the transaction that completes the checkpoint (transactional
   * mode only). The worker's own completion afterwards finds the job done and changes nothing.
   * Default false: the worker that fetched the job completes it, as it always does.
   */
  completeJob?: boolean;
}

/** The work `CheckpointJobs.run()` runs: the attempt's context, and the job. */
export type JobWork<T, R> = (ctx: CheckpointContext, job: Job<T>) => Promise<R>;

/**
 * Checkpointed work for hand-written pg-boss handlers: a handler that keeps its wrapper's
 * decorator (or calls `boss.work()` itself) runs its body through `run()` and gets what
 * `@Checkpointed({ queue })` gives: the key `<queue>:<job id>`, resume after the last committed
 * batch, the queue and job id recorded (so the reaper hands a dead worker's job back at once and
 * shutdown hands it back without spending a retry), pg-boss's retry count as the dispatch.
 *
 * @example
 * ```ts
 * @Work('screening') // the wrapper's decorator
 * async handle([job]: Job<{ ids: string[] }>[]) {
 *   await this.jobs.run(job, async (ctx) => {
 *     for await (const batch of ctx.batches(job.data.ids)) await this.screen(batch.items);
 *   }, { batchSize: 50 });
 * }
 * ```
 */
@Injectable()
export class CheckpointJobs {
  constructor(private readonly queues: CheckpointQueues) {}

  /**
   * Runs `work` for one job (or each job of pg-boss 12's job array, one after the other) under a
   * checkpoint. Resolves with the work's result, or undefined when shutdown stopped it at a
   * batch boundary and handed the job back (the worker must then neither complete nor fail it:
   * returning normally does that).
   */
  run<T, R>(job: Job<T>, work: JobWork<T, R>, options?: RunJobOptions<T>): Promise<R | undefined>;
  run<T, R>(
    jobs: readonly Job<T>[],
    work: JobWork<T, R>,
    options?: RunJobOptions<T>,
  ): Promise<Array<R | undefined>>;
  async run<T, R>(
    jobOrJobs: Job<T> | readonly Job<T>[],
    work: JobWork<T, R>,
    options: RunJobOptions<T> = {},
  ): Promise<R | undefined | Array<R | undefined>> {
    if (Array.isArray(jobOrJobs)) {
      const results: Array<R | undefined> = [];
      for (const job of jobOrJobs as readonly Job<T>[]) {
        results.push(await this.runOne(job, work, options));
      }
      return results;
    }
    return this.runOne(jobOrJobs as Job<T>, work, options);
  }

  private async runOne<T, R>(
    job: Job<T>,
    work: JobWork<T, R>,
    options: RunJobOptions<T>,
  ): Promise<R | undefined> {
    if (bossJobOf(job) === undefined || Array.isArray(job)) {
      throw new CheckpointValidationError(
        'CheckpointJobs.run() needs a pg-boss job (with id, name, data and retryCount), or an array of them',
      );
    }
    const where = `CheckpointJobs.run(${job.name})`;
    const problems = batchSizeProblems(options.batchSize);
    if (problems.length > 0) {
      throw new CheckpointValidationError(messages.badDecoratorOptions(where, problems));
    }
    const keyOf = options.key;
    const method: CheckpointedMethod = {
      where,
      options: {
        batchSize: options.batchSize,
        transactional: options.transactional,
        onInputChange: options.onInputChange,
        onCompleted: options.onCompleted,
        fingerprint: options.fingerprint,
      },
      original: (...args: unknown[]) => work(args[1] as CheckpointContext, args[0] as Job<T>),
      contextIndex: 1,
      key: () => {
        const key = keyOf === undefined ? `${job.name}:${job.id}` : keyOf(job);
        assertKey(key);
        return key;
      },
    };
    return (await this.queues.runJob(method, this, [job], job, options.completeJob === true)) as
      R | undefined;
  }
}
