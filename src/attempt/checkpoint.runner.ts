import { Inject, Injectable, Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { BatchSizer } from '../batch-sizer.js';
import type { AttemptInterrupter } from './attempt-interrupter.js';
import { AttemptContext } from './checkpoint-context.js';
import { fingerprintOf } from './fingerprint.js';
import {
  CHECKPOINT_DATA_SOURCE,
  CHECKPOINT_OPTIONS,
  CHECKPOINT_STATES,
} from '../checkpoint.constants.js';
import {
  abortedBy,
  CheckpointError,
  CheckpointFencedError,
  CheckpointInputChangedError,
  CheckpointStoreError,
  isConnectionFailure,
} from '../checkpoint.errors.js';
import type { ClaimOptions } from '../checkpoint.interfaces.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointService, type ClaimedCheckpoint } from '../checkpoint.service.js';
import { FailedItemsService } from '../items/failed-items.service.js';
import { describe } from '../items/items.errors.js';
import type { AttemptHooks, CheckpointedMethod } from './attempt.interfaces.js';

/**
 * How many times in a row an attempt may lose the database without committing a batch in
 * between before it fails: a database that answers but drops every batch must not loop forever.
 */
const MAX_LOSSES_WITHOUT_PROGRESS = 10;

/**
 * Runs attempts of decorated methods: claim, resume, run, then complete, fail or release.
 *
 * A database outage is not the attempt's fault: when the database becomes unreachable (a
 * restart, a lost connection; the open batch's transaction dies with it), the runner waits for
 * it (at most `databaseOutageMs`), claims the key again as the same attempt and calls the method
 * again from the resume point, all within the same call (for pg-boss, the same job execution:
 * no retry is spent). Only when the wait runs out does the attempt fail.
 */
@Injectable()
export class CheckpointRunner {
  private readonly logger = new Logger('Checkpoint');
  private readonly inFlight = new Set<Promise<unknown>>();
  /** @internal set by nestjs-checkpoint/testing only */
  interrupter: AttemptInterrupter | undefined;

  constructor(
    private readonly service: CheckpointService,
    @Inject(CHECKPOINT_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly failedItems: FailedItemsService,
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
  ) {}

  /** Runs one attempt of `method`; the shutdown sequence waits for it (see `running`). */
  run(
    method: CheckpointedMethod,
    instance: object,
    args: unknown[],
    hooks: AttemptHooks = {},
  ): Promise<unknown> {
    const attempt = this.attempt(method, instance, args, hooks);
    this.inFlight.add(attempt);
    const forget = () => this.inFlight.delete(attempt);
    attempt.then(forget, forget);
    return attempt;
  }

  /** The attempts running now; the shutdown sequence waits for them. */
  get running(): Iterable<Promise<unknown>> {
    return this.inFlight;
  }

  private async attempt(
    method: CheckpointedMethod,
    instance: object,
    args: unknown[],
    hooks: AttemptHooks,
  ): Promise<unknown> {
    const key = method.key(args);
    const fingerprint = fingerprintOf(method, args, hooks);
    const claimOptions: ClaimOptions = {
      fingerprint,
      dispatch: hooks.dispatch,
      queue: hooks.queue,
      jobId: hooks.jobId,
    };
    let previousEpoch: number | undefined;
    let losses = 0;
    let lastResumeFrom = -1;
    for (;;) {
      let claim: ClaimedCheckpoint;
      try {
        claim =
          previousEpoch === undefined
            ? await this.service.claim(key, claimOptions)
            : await this.service.reclaim(key, claimOptions, previousEpoch);
      } catch (error) {
        if (!this.recoverable(error, hooks.signal) || ++losses > MAX_LOSSES_WITHOUT_PROGRESS) {
          throw error;
        }
        await this.waitForDatabase(method, key, error, hooks.signal);
        continue;
      }
      if (claim.resumeFrom > lastResumeFrom) losses = 0;
      lastResumeFrom = claim.resumeFrom;
      const outcome = await this.once(method, instance, args, hooks, claim, fingerprint);
      if (outcome.interrupted) {
        // Stopped dead at a boundary (nestjs-checkpoint/testing): a new attempt takes the key over.
        previousEpoch = claim.epoch;
        continue;
      }
      if (!outcome.lost) return outcome.result;
      // The database went away under the attempt: wait for it, then go on where it stopped.
      if (++losses > MAX_LOSSES_WITHOUT_PROGRESS) {
        throw await this.end(method, claim, outcome.signal, outcome.error);
      }
      try {
        await this.waitForDatabase(method, key, outcome.error, hooks.signal);
      } catch (error) {
        throw await this.end(method, claim, outcome.signal, error);
      }
      previousEpoch = claim.epoch;
    }
  }

  /** Whether an attempt that failed this way may wait for the database and resume in place. */
  private recoverable(error: unknown, jobSignal: AbortSignal | undefined): boolean {
    return (
      !this.service.shutdownSignal.aborted &&
      jobSignal?.aborted !== true &&
      this.options.databaseOutageMs > 0 &&
      isConnectionFailure(error)
    );
  }

  private async waitForDatabase(
    method: CheckpointedMethod,
    key: string,
    error: unknown,
    jobSignal: AbortSignal | undefined,
  ): Promise<void> {
    this.logger.warn(
      `${method.where}: lost the database under "${key}" (${(error as Error).message}); ` +
        `waiting up to ${this.options.databaseOutageMs} ms to resume in place`,
    );
    const signal = AbortSignal.any(
      [this.service.shutdownSignal, jobSignal].filter((s): s is AbortSignal => s !== undefined),
    );
    await this.service.waitForDatabase(this.options.databaseOutageMs, signal);
  }

  /**
   * One claimed run of the method. Returns its result, or `lost` when the database went away
   * under it (the key is left as it is: the same attempt claims it again); any other end is
   * settled here and thrown.
   */
  private async once(
    method: CheckpointedMethod,
    instance: object,
    args: unknown[],
    hooks: AttemptHooks,
    claim: ClaimedCheckpoint,
    fingerprint: string | undefined,
  ): Promise<
    | { interrupted?: false; lost: false; result: unknown }
    | { interrupted?: false; lost: true; error: unknown; signal: AbortSignal }
    | { interrupted: true }
  > {
    const { options } = method;
    const key = claim.key;
    const signal = AbortSignal.any(
      [claim.signal, this.service.shutdownSignal, hooks.signal].filter(
        (s): s is AbortSignal => s !== undefined,
      ),
    );
    let context: AttemptContext | undefined;
    try {
      if (claim.state === CHECKPOINT_STATES.completed) {
        if ((options.onCompleted ?? 'return') === 'return') {
          await this.service.release(key, claim.epoch);
          return { lost: false, result: claim.result ?? undefined };
        }
        await this.startOver(claim, fingerprint);
      } else if (
        fingerprint !== undefined &&
        claim.fingerprint !== null &&
        claim.fingerprint !== fingerprint
      ) {
        await this.inputChanged(method, claim, fingerprint);
      }
      if (claim.attempt > 1 && claim.resumeFrom > 0) {
        this.logger.log(
          `${method.where}: resuming "${key}" at item ${claim.resumeFrom} (attempt ${claim.attempt})`,
        );
      }
      context = new AttemptContext(
        claim,
        signal,
        this.service,
        this.dataSource,
        new BatchSizer(this.interrupter?.batchSize(key) ?? options.batchSize),
        options.transactional === true,
        this.failedItems,
        { retry: options.retry, skip: options.skip },
        this.interrupter,
      );
      const callArgs = [...args];
      if (method.contextIndex !== undefined) callArgs[method.contextIndex] = context;
      // call() runs the method again after a batch that the retry or skip policy handles.
      const result = await context.call(() => method.original.apply(instance, callArgs));
      // A dead process completes nothing, even when the body swallowed its interruption.
      if (context.interrupted) return { interrupted: true };
      if (options.transactional && hooks.completeJob !== undefined) {
        const completeJob = hooks.completeJob;
        let announce: (() => void) | undefined;
        try {
          await this.dataSource.transaction(async (manager) => {
            if (manager.queryRunner !== undefined) {
              announce = this.service.deferAnnouncements(manager.queryRunner);
            }
            await this.service.complete(key, claim.epoch, result, { manager });
            await completeJob(manager, result);
          });
        } catch (error) {
          throw error instanceof CheckpointError
            ? error
            : new CheckpointStoreError('complete', key, error);
        }
        announce?.();
      } else {
        await this.service.complete(key, claim.epoch, result);
      }
      return { lost: false, result };
    } catch (error) {
      if (context?.interrupted === true) return { interrupted: true };
      // A fenced attempt lost the key to another one: nothing to resume.
      const reason: unknown = signal.aborted ? signal.reason : undefined;
      if (
        !(error instanceof CheckpointFencedError) &&
        (this.recoverable(error, hooks.signal) ||
          (reason !== undefined && this.recoverable(reason, hooks.signal)))
      ) {
        return { lost: true, error, signal };
      }
      throw await this.end(method, claim, signal, error);
    }
  }

  /**
   * Settles an attempt that threw (see `settle`) and, when it failed rather than stopped, logs it:
   * once per failed attempt (a batch retried inside it is not an attempt), so that a job failing
   * three times leaves three lines, not silence and not one line per retry. Returns the error to
   * rethrow.
   */
  private async end(
    method: CheckpointedMethod,
    claim: ClaimedCheckpoint,
    signal: AbortSignal,
    error: unknown,
  ): Promise<unknown> {
    const settled = await this.settle(claim, signal, error);
    if (settled.failed) {
      this.logger.error(
        `${method.where}: attempt ${claim.attempt} on "${claim.key}" failed: ${describe(error)}`,
        error instanceof Error ? error.stack : undefined,
      );
    }
    return settled.error;
  }

  /**
   * Ends an attempt that threw. An attempt that was stopped (fenced, shut down, given up by
   * pg-boss) hands the key back untouched; any other error marks the key failed, keeping the
   * progress for the next attempt. Returns the error to rethrow, and whether the attempt failed
   * (as opposed to being stopped).
   */
  private async settle(
    claim: ClaimedCheckpoint,
    signal: AbortSignal,
    error: unknown,
  ): Promise<{ error: unknown; failed: boolean }> {
    const stopped =
      signal.aborted ||
      error instanceof CheckpointFencedError ||
      error instanceof CheckpointInputChangedError;
    try {
      if (stopped) await this.service.release(claim.key, claim.epoch);
      else await this.service.fail(claim.key, claim.epoch, error);
    } catch (settleError) {
      if (!(settleError instanceof CheckpointFencedError)) {
        this.logger.error(
          `could not record the end of "${claim.key}": ${(settleError as Error).message}`,
        );
      }
    }
    const failed = !stopped;
    if (!signal.aborted || error instanceof CheckpointError) return { error, failed };
    // The body saw the abort its own way (an AbortError from fetch, say): say why it stopped.
    return { error: abortedBy(claim.key, signal.reason), failed };
  }

  private async startOver(
    claim: ClaimedCheckpoint,
    fingerprint: string | undefined,
  ): Promise<void> {
    await this.service.restart(claim.key, claim.epoch, fingerprint);
    Object.assign(claim, {
      state: CHECKPOINT_STATES.running,
      resumeFrom: 0,
      cursor: null,
      currentBatchIndex: 0,
      processedBatches: 0,
      totalBatches: 0,
      intermediateResult: null,
      fingerprint: fingerprint ?? null,
      redrive: false,
    });
  }

  private async inputChanged(
    method: CheckpointedMethod,
    claim: ClaimedCheckpoint,
    fingerprint: string,
  ): Promise<void> {
    const stored = claim.fingerprint ?? '';
    switch (method.options.onInputChange ?? 'fail') {
      case 'fail':
        throw new CheckpointInputChangedError(claim.key, stored, fingerprint);
      case 'restart':
        this.logger.warn(`${method.where}: input of "${claim.key}" changed; starting over`);
        return this.startOver(claim, fingerprint);
      case 'resume':
        this.logger.warn(
          `${method.where}: input of "${claim.key}" changed; keeping progress at item ${claim.resumeFrom}`,
        );
        return this.service.setFingerprint(claim.key, claim.epoch, fingerprint);
    }
  }
}
