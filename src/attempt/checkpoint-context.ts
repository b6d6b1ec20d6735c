import { Logger } from '@nestjs/common';
import { setTimeout as wait } from 'node:timers/promises';
import type { DataSource, QueryRunner } from 'typeorm';
import type { BatchSizer } from '../batch-sizer.js';
import { CheckpointInterruptedError } from './attempt-interrupter.js';
import type { AttemptInterrupter, InterruptionPhase } from './attempt-interrupter.js';
import { abortedBy, CheckpointError, CheckpointValidationError } from '../checkpoint.errors.js';
import type { CheckpointRunChunk } from '../checkpoint.interfaces.js';
import { messages } from '../checkpoint.messages.js';
import { batchProgress } from './batch-progress.js';
import { BatchTransactions } from './batch-transaction.js';
import type { CheckpointService, ClaimedCheckpoint } from '../checkpoint.service.js';
import type {
  CheckpointAttemptProgress,
  CheckpointBatch,
  CheckpointContext,
  FetchPage,
} from '../checkpointed.interface.js';
import type { FailedItemsService, SkipAdvance } from '../items/failed-items.service.js';
import type { ItemPolicies } from '../item-policy.js';
import { ItemRecovery, type OpenBatch } from '../items/item-recovery.js';
import { BatchFailureLog } from '../items/batch-failure-log.js';
import { CheckpointSkipLimitError, describe, summarize } from '../items/items.errors.js';
import { itemMessages } from '../items/items.messages.js';

const logger = new Logger('Checkpoint');
/** An item kept in the ledger where it failed: the checkpoint stays. */
const STAY: SkipAdvance = {
  currentIndex: null,
  currentBatchIndex: null,
  processedBatches: null,
  cursor: undefined,
};
/** Ledger items a redrive reads per statement. */
const REDRIVE_PAGE = 500;

/** The context of one attempt: where it resumes, and the batch loops that advance it. */
export class AttemptContext implements CheckpointContext {
  readonly key: string;
  readonly epoch: number;
  readonly attempt: number;
  readonly resumeFrom: number;
  readonly cursor: unknown;
  readonly intermediateResult: unknown;
  readonly run: CheckpointRunChunk | null;

  private nextIndex: number;
  private nextCursor: unknown;
  private batchIndex: number;
  private processedBatches: number;
  private totalItems: number | null;
  private pendingIntermediate: unknown = undefined;
  private readonly startedAt = performance.now();
  private looping = false;
  /** Items of the key in the failed-item ledger. */
  private skippedItems: number;
  /** The next loop first runs the ledger's items again (see FailedItemsService.redrive). */
  private redrivePending: boolean;
  /** The batch whose body is running; still set when the body left the loop by throwing. */
  private open: OpenBatch | undefined;
  /** Present only with a retry or skip policy: without one, a failing batch fails the attempt. */
  private readonly recovery: ItemRecovery | undefined;
  /** What the batch being recovered went through: one log line when it is over. */
  private readonly failures: BatchFailureLog;
  /** Set when the attempt was stopped dead at a boundary (nestjs-checkpoint/testing). */
  interrupted = false;

  constructor(
    claim: ClaimedCheckpoint,
    readonly signal: AbortSignal,
    private readonly service: CheckpointService,
    private readonly dataSource: DataSource,
    private readonly sizer: BatchSizer,
    private readonly transactional: boolean,
    private readonly ledger: FailedItemsService,
    private readonly policies: ItemPolicies = {},
    private readonly interrupter?: AttemptInterrupter,
  ) {
    this.key = claim.key;
    this.epoch = claim.epoch;
    this.attempt = claim.attempt;
    this.resumeFrom = claim.resumeFrom;
    this.cursor = claim.cursor;
    this.intermediateResult = claim.intermediateResult;
    this.run = claim.run;
    this.nextIndex = claim.resumeFrom;
    this.nextCursor = claim.cursor;
    this.batchIndex = claim.currentBatchIndex;
    this.processedBatches = claim.processedBatches;
    this.totalItems = claim.totalItems;
    this.skippedItems = claim.skippedItems;
    this.redrivePending = claim.redrive;
    this.recovery =
      policies.retry === undefined && policies.skip === undefined
        ? undefined
        : new ItemRecovery(policies);
    this.failures = new BatchFailureLog(this.key);
  }

  /**
   * Runs the method's body for this attempt. When a batch's body throws an error that the retry
   * or skip policy names, the batch has been rolled back (the loop's generator saw the consumer
   * leave), so the body is run again, exactly as a resume would run it, and its loop goes on
   * from the rolled-back batch: the same batch after a backoff, or its items one at a time, or
   * past an item just written to the ledger. Any other error ends the attempt as before.
   */
  async call<R>(body: () => R | Promise<R>): Promise<R> {
    for (;;) {
      try {
        this.open = undefined;
        return await body();
      } catch (error) {
        try {
          await this.recover(error);
        } catch (final) {
          this.logFailures(`the attempt ends on it (${describe(final)})`);
          throw final;
        }
      }
    }
  }

  batches<T>(items: readonly T[]): AsyncIterable<CheckpointBatch<T>> {
    if (this.nextIndex > items.length) {
      // Going on would advance past the end of the input: it changed since the last attempt.
      throw new CheckpointValidationError(
        messages.resumeBeyondInput(this.key, this.nextIndex, items.length),
      );
    }
    this.totalItems = items.length;
    return this.loop(
      (limit) => Promise.resolve(items.slice(this.nextIndex, this.nextIndex + limit)),
      undefined,
      (index) => {
        if (index >= items.length) {
          throw new CheckpointValidationError(
            itemMessages.redriveOutOfRange(this.key, index, items.length),
          );
        }
        return items[index];
      },
      (next) => next < items.length,
    );
  }

  pages<T, C>(
    fetchPage: FetchPage<T, C>,
    cursorOf: (item: T) => C,
  ): AsyncIterable<CheckpointBatch<T>> {
    // A redrive of a paged source gets the items back as the ledger stored them.
    return this.loop(
      (limit) => fetchPage(this.nextCursor as C | null, limit),
      cursorOf,
      (_index, stored) => stored as T,
    );
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
   * throw) the generator's finally block rolls the open batch back. After a failure that a
   * policy handles, `recovery` says what the next batch is (see call()). Where `hasMore` knows
   * that items follow (an array's), a batch's commit begins the next batch's transaction too.
   */
  private async *loop<T>(
    take: (limit: number) => Promise<T[]>,
    cursorOf: ((item: T) => unknown) | undefined,
    fromLedger: (index: number, stored: unknown) => T,
    hasMore: (next: number) => boolean = () => false,
  ): AsyncGenerator<CheckpointBatch<T>> {
    if (this.looping)
      throw new CheckpointError(
        `key "${this.key}": only one batches()/pages() loop may run at a time`,
      );
    this.looping = true;
    const transactions = this.transactional
      ? new BatchTransactions(this.dataSource, this.service, this.key)
      : undefined;
    try {
      if (this.redrivePending) yield* this.redrivePass(transactions, fromLedger);
      for (;;) {
        this.throwIfAborted();
        const normalSize = this.sizer.size;
        const { size, mode } = this.recovery?.next(this.nextIndex, normalSize) ?? {
          size: normalSize,
          mode: 'batch' as const,
        };
        const started = performance.now();
        const items = await take(size);
        if (items.length === 0) return;
        // pages() resumes after the last key of the last committed page.
        const cursor = cursorOf === undefined ? undefined : cursorOf(items[items.length - 1]);
        // An item replayed alone counts as a batch only when it ends the replayed batch.
        const endsBatch = mode === 'batch' || this.recovery?.endsScan(this.nextIndex) === true;
        const event = {
          key: this.key,
          epoch: this.epoch,
          index: this.batchIndex,
          startIndex: this.nextIndex,
          items: items.length,
          mode,
          endsBatch,
        };
        this.service.observers.emit('batchStarted', event);
        let committed = false;
        try {
          const beginNext = hasMore(this.nextIndex + items.length);
          yield* this.handOver(
            transactions,
            { index: this.batchIndex, startIndex: this.nextIndex, items, mode },
            cursor,
            (transaction) =>
              this.advance(items.length, normalSize, cursor, endsBatch, transaction, beginNext),
          );
          committed = true;
        } finally {
          const durationMs = performance.now() - started;
          this.service.observers.emit('batchEnded', { ...event, committed, durationMs });
        }
        this.movedOn(this.nextIndex + items.length, endsBatch, cursor);
        this.pendingIntermediate = undefined;
        if (mode === 'batch') this.sizer.record(items.length, performance.now() - started);
        // A short page is the last one of a keyset-paginated source.
        if (cursorOf !== undefined && mode === 'batch' && items.length < size) return;
      }
    } finally {
      this.looping = false;
      await transactions?.close();
    }
  }

  /**
   * Hands one batch to the loop body, then commits `write` with it: in the batch's transaction
   * in transactional mode (`transactions`), on its own otherwise. While the body runs, `open`
   * names the batch: if the body throws, the consumer leaves the loop, the finally block rolls
   * back, and call() finds the batch there. `write` says whether it began the next batch's
   * transaction with its commit.
   */
  private async *handOver<T>(
    transactions: BatchTransactions | undefined,
    batch: Omit<CheckpointBatch<T>, 'manager'>,
    cursor: unknown,
    write: (transaction: QueryRunner | undefined) => Promise<boolean>,
  ): AsyncGenerator<CheckpointBatch<T>> {
    const open: OpenBatch = {
      startIndex: batch.startIndex,
      count: batch.items.length,
      mode: batch.mode,
      item: batch.items[0],
      cursor,
    };
    if (transactions !== undefined) {
      yield* transactions.batch(
        batch,
        (held) => (this.open = held ? open : undefined),
        (transaction) => {
          // Thrown inside the batch's transaction: it rolls back, as a dead process's would.
          this.interruptAt(batch, 'before-commit');
          return write(transaction);
        },
      );
    } else {
      this.open = open;
      yield { ...batch, manager: this.dataSource.manager };
      this.open = undefined;
      this.interruptAt(batch, 'before-commit');
      await write(undefined);
    }
    this.interruptAt(batch, 'after-commit');
  }

  /** Stops the attempt dead here when the testing entry point's interrupter says so. */
  private interruptAt(
    batch: { index: number; startIndex: number; items: unknown[] },
    phase: InterruptionPhase,
  ): void {
    if (this.interrupter === undefined) return;
    const boundary = { ...batch, key: this.key, items: batch.items.length };
    if (!this.interrupter.interrupts(boundary, phase)) return;
    this.interrupted = true;
    throw new CheckpointInterruptedError(boundary, phase);
  }

  /**
   * Runs each ledger item of a redrive alone: one that passes leaves the ledger in its own
   * transaction. The pass re-reads the ledger when the body is run again after a failure: items
   * that passed are gone, items that failed again are newer than the request and not re-run.
   */
  private async *redrivePass<T>(
    transactions: BatchTransactions | undefined,
    fromLedger: (index: number, stored: unknown) => T,
  ): AsyncGenerator<CheckpointBatch<T>> {
    // A page at a time: a ledger of a million items is never read into memory at once.
    for (let after = -1, more = true; more;) {
      const page = await this.ledger.redriveItems(this.key, after, REDRIVE_PAGE);
      more = page.length === REDRIVE_PAGE;
      for (const row of page) {
        this.throwIfAborted();
        const item = fromLedger(row.itemIndex, row.item);
        yield* this.handOver(
          transactions,
          { index: this.batchIndex, startIndex: row.itemIndex, items: [item], mode: 'redrive' },
          undefined,
          async (transaction) => {
            await this.ledger.passed(this.key, this.epoch, row.itemIndex, transaction?.manager);
            return false;
          },
        );
        this.recovery?.committed();
        this.logFailures();
        this.skippedItems -= 1;
        after = row.itemIndex;
      }
    }
    await this.ledger.endRedrive(this.key, this.epoch);
    this.redrivePending = false;
  }

  /** After the body threw: returns to run it again (see call()), or throws to end the attempt. */
  private async recover(error: unknown): Promise<void> {
    const open = this.open;
    this.open = undefined;
    // Errors of the library itself (fenced, aborted, store failures) are never the items' fault.
    if (
      open === undefined ||
      this.recovery === undefined ||
      this.signal.aborted ||
      error instanceof CheckpointError
    ) {
      throw error;
    }
    const items = this.totalItems ?? this.nextIndex + 1;
    const decision = this.recovery.decide(error, open, this.skippedItems, items);
    switch (decision.kind) {
      case 'fail':
        throw error;
      case 'retry':
        this.failures.retried(open, summarize(error));
        try {
          await wait(decision.delayMs, undefined, { signal: this.signal });
        } catch {
          this.throwIfAborted();
        }
        return;
      case 'scan':
        this.failures.replayed(open, summarize(error));
        return;
      case 'limit':
        throw new CheckpointSkipLimitError(
          this.key,
          open.startIndex,
          this.skippedItems,
          decision.allowed,
          error,
        );
      case 'keep':
        this.failures.keptInLedger(open, summarize(error));
        await this.toLedger(open, error, STAY);
        this.logFailures();
        return;
      case 'skip':
        return this.skip(open, error);
    }
  }

  /** Writes the open item to the ledger and moves the checkpoint past it, in one statement. */
  private async skip(open: OpenBatch, error: unknown): Promise<void> {
    this.failures.skipped(open, summarize(error));
    const endsBatch = open.mode === 'batch' || this.recovery?.endsScan(open.startIndex) === true;
    await this.toLedger(open, error, {
      currentIndex: open.startIndex + 1,
      currentBatchIndex: endsBatch ? this.batchIndex + 1 : null,
      processedBatches: endsBatch ? this.processedBatches + 1 : null,
      cursor: open.cursor,
    });
    this.skippedItems += 1;
    this.service.observers.emit('itemsSkipped', {
      key: this.key,
      epoch: this.epoch,
      count: 1,
      endsBatch,
    });
    this.movedOn(open.startIndex + 1, endsBatch, open.cursor);
  }

  /** A batch (or an item replayed alone) committed: the attempt's position moves to `next`. */
  private movedOn(next: number, endsBatch: boolean, cursor: unknown): void {
    this.nextIndex = next;
    if (endsBatch) {
      this.batchIndex += 1;
      this.processedBatches += 1;
    }
    if (cursor !== undefined) this.nextCursor = cursor;
    this.recovery?.committed();
    if (endsBatch) this.logFailures();
  }

  /** The batch being recovered is over: its one line, when it met failures. */
  private logFailures(stopped?: string): void {
    const line = this.failures.end(stopped);
    if (line !== undefined) logger.warn(line);
  }

  /** Writes the open item to the ledger, and moves the checkpoint by `advance`, in one statement. */
  private toLedger(open: OpenBatch, error: unknown, advance: SkipAdvance): Promise<void> {
    const ledgerValue = this.policies.skip?.ledgerValue as ((item: unknown) => unknown) | undefined;
    const value = ledgerValue === undefined ? open.item : ledgerValue(open.item);
    return this.ledger.skip(this.key, this.epoch, open.startIndex, value, error, advance);
  }

  private async advance(
    count: number,
    size: number,
    cursor: unknown,
    endsBatch: boolean,
    transaction: QueryRunner | undefined,
    beginNext: boolean,
  ): Promise<boolean> {
    const { nextIndex, batchIndex, processedBatches, totalItems } = this;
    const at = { nextIndex, batchIndex, processedBatches, totalItems };
    const progress = batchProgress(at, count, size, endsBatch, cursor, this.pendingIntermediate);
    if (transaction !== undefined) {
      return this.service.advanceAndCommit(this.key, this.epoch, progress, transaction, beginNext);
    }
    await this.service.advance(this.key, this.epoch, progress);
    return false;
  }

  private throwIfAborted(): void {
    if (this.signal.aborted) throw abortedBy(this.key, this.signal.reason);
  }
}
