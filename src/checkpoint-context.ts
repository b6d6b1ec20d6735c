import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { BatchSizer } from './batch-sizer.js';
import { CheckpointAbortedError, CheckpointError } from './checkpoint.errors.js';
import type { CheckpointService, ClaimedCheckpoint } from './checkpoint.service.js';
import type {
  CheckpointAttemptProgress,
  CheckpointBatch,
  CheckpointContext,
  FetchPage,
} from './checkpointed.interface.js';

const logger = new Logger('Checkpoint');

/** The context of one attempt: where it resumes, and the batch loops that advance it. */
export class AttemptContext implements CheckpointContext {
  readonly key: string;
  readonly epoch: number;
  readonly attempt: number;
  readonly resumeFrom: number;
  readonly cursor: unknown;
  readonly intermediateResult: unknown;

  private nextIndex: number;
  private nextCursor: unknown;
  private batchIndex: number;
  private processedBatches: number;
  private totalItems: number | null;
  private pendingIntermediate: unknown = undefined;
  private readonly startedAt = performance.now();
  private looping = false;

  constructor(
    claim: ClaimedCheckpoint,
    readonly signal: AbortSignal,
    private readonly service: CheckpointService,
    private readonly dataSource: DataSource,
    private readonly sizer: BatchSizer,
    private readonly transactional: boolean,
  ) {
    this.key = claim.key;
    this.epoch = claim.epoch;
    this.attempt = claim.attempt;
    this.resumeFrom = claim.resumeFrom;
    this.cursor = claim.cursor;
    this.intermediateResult = claim.intermediateResult;
    this.nextIndex = claim.resumeFrom;
    this.nextCursor = claim.cursor;
    this.batchIndex = claim.currentBatchIndex;
    this.processedBatches = claim.processedBatches;
    this.totalItems = claim.totalItems;
  }

  batches<T>(items: readonly T[]): AsyncIterable<CheckpointBatch<T>> {
    this.totalItems = items.length;
    return this.loop((limit) =>
      Promise.resolve(items.slice(this.nextIndex, this.nextIndex + limit)),
    );
  }

  pages<T, C>(
    fetchPage: FetchPage<T, C>,
    cursorOf: (item: T) => C,
  ): AsyncIterable<CheckpointBatch<T>> {
    return this.loop((limit) => fetchPage(this.nextCursor as C | null, limit), cursorOf);
  }

  setIntermediateResult(value: unknown): void {
    this.pendingIntermediate = value;
  }

  progress(): CheckpointAttemptProgress {
    const seconds = (performance.now() - this.startedAt) / 1000;
    return {
      processedItems: this.nextIndex,
      totalItems: this.totalItems,
      processedBatches: this.processedBatches,
      itemsPerSecond: seconds > 0 ? (this.nextIndex - this.resumeFrom) / seconds : 0,
      batchSize: this.sizer.size,
    };
  }

  /**
   * The one batch loop behind batches() and pages(): take up to `size` items, hand them to the
   * body, then advance the checkpoint (inside the batch's transaction in transactional mode).
   * The body runs while the generator is suspended at `yield`; when the consumer asks for the
   * next batch the generator resumes and commits. If the consumer leaves the loop (break or
   * throw) the generator's finally block rolls the open batch back.
   */
  private async *loop<T>(
    take: (limit: number) => Promise<T[]>,
    cursorOf?: (item: T) => unknown,
  ): AsyncGenerator<CheckpointBatch<T>> {
    if (this.looping)
      throw new CheckpointError(
        `key "${this.key}": only one batches()/pages() loop may run at a time`,
      );
    this.looping = true;
    try {
      for (;;) {
        this.throwIfAborted();
        const size = this.sizer.size;
        const started = performance.now();
        const items = await take(size);
        if (items.length === 0) return;
        const batch = { index: this.batchIndex, startIndex: this.nextIndex, items };
        // pages() resumes after the last key of the last committed page.
        const cursor = cursorOf === undefined ? undefined : cursorOf(items[items.length - 1]);
        if (this.transactional) {
          const runner = this.dataSource.createQueryRunner('master');
          await runner.connect();
          await runner.startTransaction();
          let committed = false;
          try {
            yield { ...batch, manager: runner.manager };
            await this.advance(items, size, cursor, runner.manager);
            await runner.commitTransaction();
            committed = true;
          } finally {
            if (!committed && runner.isTransactionActive) {
              await runner
                .rollbackTransaction()
                .catch((error: Error) => logger.warn(`rollback failed: ${error.message}`));
            }
            await runner.release();
          }
        } else {
          yield { ...batch, manager: this.dataSource.manager };
          await this.advance(items, size, cursor, undefined);
        }
        this.nextIndex += items.length;
        this.batchIndex += 1;
        this.processedBatches += 1;
        if (cursor !== undefined) this.nextCursor = cursor;
        this.pendingIntermediate = undefined;
        this.sizer.record(items.length, performance.now() - started);
        // A short page is the last one of a keyset-paginated source.
        if (cursorOf !== undefined && items.length < size) return;
      }
    } finally {
      this.looping = false;
    }
  }

  private async advance<T>(
    items: T[],
    size: number,
    cursor: unknown,
    manager: CheckpointBatch<T>['manager'] | undefined,
  ): Promise<void> {
    const currentIndex = this.nextIndex + items.length;
    const processedBatches = this.processedBatches + 1;
    const remaining = this.totalItems === null ? null : Math.max(0, this.totalItems - currentIndex);
    await this.service.advance(
      this.key,
      this.epoch,
      {
        currentIndex,
        currentBatchIndex: this.batchIndex + 1,
        processedBatches,
        totalBatches:
          remaining === null ? undefined : processedBatches + Math.ceil(remaining / size),
        totalItems: this.totalItems ?? undefined,
        cursor,
        intermediateResult: this.pendingIntermediate,
      },
      { manager },
    );
  }

  private throwIfAborted(): void {
    if (!this.signal.aborted) return;
    const reason: unknown = this.signal.reason;
    if (reason instanceof CheckpointError) throw reason;
    throw new CheckpointAbortedError(
      this.key,
      reason instanceof Error ? reason.message : String(reason),
    );
  }
}
