import type { QueueOptions, WorkOptions } from 'pg-boss';
import type { EntityManager } from 'typeorm';
import type { AdaptiveBatchSize } from './batch-sizer.js';
import type { RetryPolicy, SkipPolicy } from './item-policy.js';
import type { BatchMode } from './items/item-recovery.js';
import type { CheckpointRunChunk } from './checkpoint.interfaces.js';

/** What a call on a key whose work already completed does. */
export type OnCompleted = 'return' | 'rerun';
/** What a resume does when the input's fingerprint differs from the stored one. */
export type OnInputChange = 'fail' | 'restart' | 'resume';

/** pg-boss queue options the decorator passes to `createQueue`, under pg-boss's own names. */
export type CheckpointQueueOptions = Pick<
  QueueOptions,
  | 'retryLimit'
  | 'retryDelay'
  | 'retryBackoff'
  | 'retryDelayMax'
  | 'expireInSeconds'
  | 'retentionSeconds'
  | 'deleteAfterSeconds'
  | 'heartbeatSeconds'
>;

/** pg-boss work options the decorator passes to `work`; the handler always takes one job. */
export type CheckpointWorkOptions = Pick<
  WorkOptions,
  'localConcurrency' | 'pollingIntervalSeconds' | 'heartbeatRefreshSeconds'
>;

/** Options of `@Checkpointed()`. */
export interface CheckpointedOptions extends CheckpointQueueOptions, CheckpointWorkOptions {
  /**
   * The checkpoint key, from the method's arguments (the context parameter excluded). For a
   * queue handler the default is `<queue>:<job id>`; pg-boss keeps the id across retries.
   */
  key?: (...args: never[]) => string;
  /** Items per batch (default 100), or a time target that adapts the size. */
  batchSize?: number | AdaptiveBatchSize;
  /**
   * Run each batch in a transaction: the batch's writes through `batch.manager` and the
   * checkpoint advance commit together, so each item's effect is applied exactly once.
   */
  transactional?: boolean;
  /**
   * What identifies the input, so that a resume on a changed input is caught (`onInputChange`).
   * By default a digest of the method's arguments (the context parameter left out; for a queue
   * job, its `data`); a function returns a value derived from the arguments instead (hashed and
   * stored: cheaper for a huge input, e.g. a run id); `false` turns the check off.
   */
  fingerprint?: ((...args: never[]) => unknown) | false;
  /** When the fingerprint changed: fail (default), start over, or keep the progress. */
  onInputChange?: OnInputChange;
  /** A call on a completed key: return the stored result (default) or run again. */
  onCompleted?: OnCompleted;
  /** Register the method as the pg-boss worker of this queue. */
  queue?: string;
  /**
   * Retries a batch whose body throws one of the errors named, in place: the batch is rolled
   * back and handed to the loop body again after a backoff, up to `limit` times in a row.
   * `signal` cuts the wait short. When the retries are spent, the batch is replayed one item
   * at a time and each item gets `replayTries` tries (default 1). A queue's module options
   * (`queues`) fill in the fields left out here.
   */
  retry?: RetryPolicy;
  /**
   * Isolates failing items: when a batch throws one of the errors named (after its retries),
   * it is rolled back and replayed one item at a time; an item that still throws is written to
   * the failed-item ledger and the work goes on past it. Beyond `limit` the attempt fails with
   * CheckpointSkipLimitError, progress and ledger kept. See docs/failing-items.md.
   */
  skip?: SkipPolicy;
}

/** One batch handed to the loop body. */
export interface CheckpointBatch<T> {
  /** Index of this batch over the whole work (batches before a resume count). */
  index: number;
  /** Position of `items[0]` in the whole input. */
  startIndex: number;
  items: T[];
  /**
   * `batch` normally; `scan` when a failed batch is replayed one item at a time (`items` holds
   * that one item); `redrive` when a ledger item runs again (see FailedItemsService.redrive).
   */
  mode: BatchMode;
  /**
   * In transactional mode, the EntityManager of the batch's transaction: writes through it
   * commit with the checkpoint advance, or not at all. Otherwise the DataSource's manager, whose
   * writes commit one by one (at least once across crashes).
   */
  manager: EntityManager;
}

/** Progress as the running attempt sees it. */
export interface CheckpointAttemptProgress {
  processedItems: number;
  totalItems: number | null;
  processedBatches: number;
  /** Items per second in this attempt so far. */
  itemsPerSecond: number;
  /** Size of the next batch (changes with an adaptive batch size). */
  batchSize: number;
}

/** Reads one page of a source in key order: the items after `after` (all when null), at most `limit`. */
export type FetchPage<T, C> = (after: C | null, limit: number) => Promise<T[]>;

/**
 * What a `@Checkpointed()` method gets through its `@CheckpointCtx()` parameter.
 */
export interface CheckpointContext {
  readonly key: string;
  /** The epoch this attempt claimed; every write it makes is fenced by it. */
  readonly epoch: number;
  /** 1 for the first attempt on the key, then one more per resume. */
  readonly attempt: number;
  /** Item index this attempt starts at: every item before it was committed earlier. */
  readonly resumeFrom: number;
  /** The cursor stored by `pages()`, or null. */
  readonly cursor: unknown;
  /** What the last batch stored with `setIntermediateResult()`, or null. */
  readonly intermediateResult: unknown;
  /** The run this attempt works a chunk of (`CheckpointRuns.start()`), or null. */
  readonly run: CheckpointRunChunk | null;
  /**
   * Fires when this attempt must stop: ownership lost, a newer attempt took over, pg-boss gave
   * the job up, or the application is shutting down. `batches()` and `pages()` stop at the
   * next boundary on their own; pass it to long calls inside a batch.
   */
  readonly signal: AbortSignal;
  /**
   * Iterates `items` in batches, starting after the last committed item, and advances the
   * checkpoint after each batch (in the batch's transaction in transactional mode). Leaving the
   * loop early (break or throw) discards the current batch.
   */
  batches<T>(items: readonly T[]): AsyncIterable<CheckpointBatch<T>>;
  /**
   * Like `batches()`, for a source read page by page in key order (keyset pagination). The
   * stored resume point is the cursor of the last committed item, so a resume asks for the
   * items after it.
   */
  pages<T, C>(
    fetchPage: FetchPage<T, C>,
    cursorOf: (item: T) => C,
  ): AsyncIterable<CheckpointBatch<T>>;
  /** Stores a JSON value with the next advance (running totals, say); read back on resume. */
  setIntermediateResult(value: unknown): void;
  /** Progress of this attempt. */
  progress(): CheckpointAttemptProgress;
}
