import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { BatchSizer } from './batch-sizer.js';
import { AttemptContext } from './checkpoint-context.js';
import {
  CHECKPOINT_DATA_SOURCE,
  CHECKPOINT_OPTIONS,
  CHECKPOINT_STATES,
} from './checkpoint.constants.js';
import {
  CheckpointAbortedError,
  CheckpointError,
  CheckpointFencedError,
  CheckpointInputChangedError,
  CheckpointStoreError,
  isConnectionFailure,
} from './checkpoint.errors.js';
import type { ClaimOptions } from './checkpoint.interfaces.js';
import type { ResolvedCheckpointOptions } from './checkpoint.options.js';
import { CheckpointService, type ClaimedCheckpoint } from './checkpoint.service.js';
import type { CheckpointedOptions } from './checkpointed.interface.js';
import { FailedItemsService } from './items/failed-items.service.js';

/** A decorated method, ready to run: built once at bootstrap by the explorer. */
export interface CheckpointedMethod {
  /** `ClassName.method`, for messages. */
  where: string;
  options: CheckpointedOptions;
  original: (...args: unknown[]) => unknown;
  contextIndex: number | undefined;
  key: (args: unknown[]) => string;
}

/** What the pg-boss integration adds to one attempt. */
export interface AttemptHooks {
  /** pg-boss's retry count of the job: a newer dispatch supersedes an older live one. */
  dispatch?: number;
  /** pg-boss's signal for the job (aborted when pg-boss gives the attempt up). */
  signal?: AbortSignal;
  queue?: string;
  jobId?: string;
  /** In transactional mode: completes the job in the transaction that completes the key. */
  completeJob?: (manager: EntityManager, result: unknown) => Promise<void>;
}

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
    { lost: false; result: unknown } | { lost: true; error: unknown; signal: AbortSignal }
  > {
    const { options } = method;
    const key = claim.key;
    const signal = AbortSignal.any(
      [claim.signal, this.service.shutdownSignal, hooks.signal].filter(
        (s): s is AbortSignal => s !== undefined,
      ),
    );
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
      const context = new AttemptContext(
        claim,
        signal,
        this.service,
        this.dataSource,
        new BatchSizer(options.batchSize),
        options.transactional === true,
        this.failedItems,
        { retry: options.retry, skip: options.skip },
      );
      const callArgs = [...args];
      if (method.contextIndex !== undefined) callArgs[method.contextIndex] = context;
      // call() runs the method again after a batch that the retry or skip policy handles.
      const result = await context.call(() => method.original.apply(instance, callArgs));
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
    const reason: unknown = signal.reason;
    if (reason instanceof CheckpointError) return { error: reason, failed };
    return {
      error: new CheckpointAbortedError(
        claim.key,
        reason instanceof Error ? reason.message : String(reason),
      ),
      failed,
    };
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

/**
 * The fingerprint of one call: the `fingerprint` option's value, digested; by default a digest of
 * the method's arguments (the context parameter left out; for a queue job, its data, also when
 * the job comes as the only element of a work() handler's array); none with
 * `fingerprint: false`.
 */
function fingerprintOf(
  method: CheckpointedMethod,
  args: unknown[],
  hooks: AttemptHooks,
): string | undefined {
  const option = method.options.fingerprint;
  if (option === false) return undefined;
  if (option !== undefined) return digest(option(...(args as never[])));
  // A pg-boss 12 work() handler gets an array; `@Checkpointed({ key })` under a wrapper's worker
  // is called with it. Its job's other fields (retryCount, startedOn) change on every retry, so
  // digesting them made each resumed attempt look like changed input and fail.
  const first = args[0];
  const job: unknown =
    hooks.queue !== undefined && Array.isArray(first) && first.length === 1
      ? (first as unknown[])[0]
      : first;
  if (
    (hooks.queue !== undefined || method.options.queue !== undefined) &&
    typeof job === 'object' &&
    job !== null &&
    'data' in job
  ) {
    return inputDigest(job.data);
  }
  return inputDigest(args.filter((_, index) => index !== method.contextIndex));
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** A short, stable digest of any JSON value (sha256, 16 hex characters). */
export function digest(value: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(value) ?? 'undefined')
    .digest('hex')
    .slice(0, 16);
}

/**
 * The default fingerprint: a digest (sha256, 16 hex characters) of the input in a canonical form:
 * object keys sorted, so that the same data built in another order digests the same; what JSON
 * leaves out (functions, symbols, undefined properties) left out; what it cannot hold (BigInt,
 * cycles) spelled out instead of throwing, since a fingerprint must never stop a call.
 */
export function inputDigest(value: unknown): string {
  const hash = createHash('sha256');
  // Appended to one string (V8 joins appends without copying) and hashed every 64 KB, so that a
  // large input never becomes one huge string; the digest does not depend on the slicing.
  let pending = '';
  const emit = (text: string) => {
    if (text.length > 4096) {
      // A long text goes to the hash as it is, without being copied into the pending string.
      if (pending.length > 0) hash.update(pending);
      pending = '';
      hash.update(text);
      return;
    }
    pending += text;
    if (pending.length > 65_536) {
      hash.update(pending);
      pending = '';
    }
  };
  const seen = new Set<object>();
  const walk = (item: unknown): void => {
    switch (typeof item) {
      case 'string':
        // Length-prefixed rather than JSON-escaped: unambiguous, and no copy of a long text.
        emit(`s${item.length}:`);
        return emit(item);
      case 'number':
        return emit(Number.isFinite(item) ? String(item) : `"${String(item)}"`);
      case 'boolean':
        return emit(item ? 'true' : 'false');
      case 'bigint':
        return emit(`{"$bigint":"${item}"}`);
      case 'undefined':
      case 'function':
      case 'symbol':
        return emit('null');
    }
    if (item === null) return emit('null');
    const object = item as object;
    if (seen.has(object)) return emit('"$cycle"');
    if (item instanceof Date) return emit(JSON.stringify(item.toISOString()));
    seen.add(object);
    if (Array.isArray(object)) {
      emit('[');
      for (let i = 0; i < object.length; i++) {
        if (i > 0) emit(',');
        walk((object as unknown[])[i]);
      }
      emit(']');
    } else {
      emit('{');
      let first = true;
      for (const name of Object.keys(object).sort()) {
        const property: unknown = (object as Record<string, unknown>)[name];
        if (
          property === undefined ||
          typeof property === 'function' ||
          typeof property === 'symbol'
        )
          continue;
        if (!first) emit(',');
        first = false;
        emit(`s${name.length}:`);
        emit(name);
        walk(property);
      }
      emit('}');
    }
    seen.delete(object);
  };
  walk(value);
  hash.update(pending);
  return hash.digest('hex').slice(0, 16);
}
