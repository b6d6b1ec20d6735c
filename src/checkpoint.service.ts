import { Inject, Injectable } from '@nestjs/common';
import { hostname } from 'node:os';
import { Observable } from 'rxjs';
import { CHECKPOINT_OPTIONS, CHECKPOINT_STATES } from './checkpoint.constants.js';
import {
  CheckpointAbortedError,
  CheckpointFencedError,
  CheckpointLeaseConflictError,
  CheckpointValidationError,
} from './checkpoint.errors.js';
import type {
  AdvanceProgress,
  CheckpointData,
  CheckpointProgress,
  CheckpointRecord,
  Claim,
  ClaimOptions,
  ListOptions,
  PurgeOptions,
  WriteOptions,
} from './checkpoint.interfaces.js';
import { messages } from './checkpoint.messages.js';
import type { ResolvedCheckpointOptions } from './checkpoint.options.js';
import { CheckpointRepository, toRecord, type CheckpointRow } from './checkpoint.repository.js';
import { CheckpointSession } from './checkpoint.session.js';
import { assertCount, assertKey, assertOptionalCount, toJson } from './checkpoint.validation.js';

/** An attempt's ownership of a key, as this process knows it. */
interface Lease {
  key: string;
  epoch: number;
  dispatch: number | undefined;
  /** Whether this process's session holds the key's advisory lock (a superseding claim may not). */
  locked: boolean;
  controller: AbortController;
}

/** What a claim returns: the resume point, the epoch, and a signal fired when ownership is lost. */
export interface ClaimedCheckpoint extends Claim {
  signal: AbortSignal;
}

/**
 * Checkpoints of long-running work, one narrow row per key, on the application's own DataSource.
 *
 * The original service's five methods keep their names and meaning; every write is one SQL
 * statement, and a database failure throws `CheckpointStoreError` instead of returning null.
 * The ownership calls (`claim`, `advance`, `complete`, `fail`, `release`) are what
 * `@Checkpointed()` uses; they are public for work that cannot use the decorator.
 */
@Injectable()
export class CheckpointService {
  private readonly leases = new Map<string, Lease>();
  private readonly ownerPrefix = `${hostname()}:${process.pid}`;
  private ownerSequence = 0;
  private readonly shutdown = new AbortController();

  constructor(
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
  ) {
    // The session logs the loss; here every attempt that held a lease on it is stopped.
    session.onLoss(() => {
      for (const lease of this.leases.values()) {
        if (!lease.locked) continue;
        lease.controller.abort(
          new CheckpointAbortedError(lease.key, messages.ownershipLost(lease.key)),
        );
        this.forget(lease);
      }
    });
  }

  /** Fired when the application shuts down: in-flight work stops at its next batch boundary. */
  get shutdownSignal(): AbortSignal {
    return this.shutdown.signal;
  }

  // --- the original service's five methods ---------------------------------------------------

  /** Stores the checkpoint of `key`, replacing the previous one. One statement. */
  async saveCheckpoint(key: string, checkpoint: CheckpointData): Promise<void> {
    assertKey(key);
    for (const field of [
      'currentBatchIndex',
      'currentIndex',
      'processedBatches',
      'totalBatches',
    ] as const) {
      assertCount(field, checkpoint?.[field]);
    }
    if (checkpoint.processedBatches > checkpoint.totalBatches) {
      throw new CheckpointValidationError(
        messages.processedOverTotal(checkpoint.processedBatches, checkpoint.totalBatches),
      );
    }
    const query = this.repository.sql.save(
      key,
      checkpoint.currentBatchIndex,
      checkpoint.currentIndex,
      checkpoint.processedBatches,
      checkpoint.totalBatches,
      this.json('intermediateResult', checkpoint.intermediateResult),
      this.json('metadata', checkpoint.metadata),
    );
    await this.repository.run('save', key, query);
    this.session.announce(key);
  }

  /** The checkpoint of `key`, or null when there is none. A failed read throws. */
  async loadCheckpoint(key: string): Promise<CheckpointData | null> {
    const row = await this.findRow('load', key);
    if (row === undefined) return null;
    const data: CheckpointData = {
      currentBatchIndex: Number(row.current_batch_index),
      currentIndex: Number(row.current_index),
      processedBatches: Number(row.processed_batches),
      totalBatches: Number(row.total_batches),
      lastUpdate: row.updated_at,
    };
    if (row.intermediate_result !== null) data.intermediateResult = row.intermediate_result;
    if (row.metadata !== null) data.metadata = row.metadata;
    return data;
  }

  /** Deletes the checkpoint of `key`. An attempt still running on it is fenced at its next write. */
  async clearCheckpoint(key: string): Promise<void> {
    assertKey(key);
    await this.repository.run('clear', key, this.repository.sql.remove(key));
    this.session.announce(key);
  }

  /** Progress of `key`: the original four fields and rate, ETA and state; null when none. */
  async getProgress(key: string): Promise<CheckpointProgress | null> {
    const row = await this.findRow('progress', key);
    return row === undefined ? null : toProgress(row);
  }

  /** True when a checkpoint exists and fewer batches are processed than there are in total. */
  async canResume(key: string): Promise<boolean> {
    const checkpoint = await this.loadCheckpoint(key);
    return checkpoint !== null && checkpoint.processedBatches < checkpoint.totalBatches;
  }

  // --- ownership ------------------------------------------------------------------------------

  /**
   * Takes ownership of `key` for one attempt and returns where to resume. Throws
   * `CheckpointLeaseConflictError` at once while another attempt that is still alive owns it
   * (unless this claim is a newer pg-boss dispatch of the same job). Every claim bumps the epoch,
   * which fences whatever attempt owned the key before.
   */
  async claim(key: string, options: ClaimOptions = {}): Promise<ClaimedCheckpoint> {
    assertKey(key);
    assertOptionalCount('totalItems', options.totalItems);
    assertOptionalCount('dispatch', options.dispatch);
    const local = this.leases.get(key);
    if (local !== undefined && !supersedes(options.dispatch, local.dispatch)) {
      throw new CheckpointLeaseConflictError(key);
    }
    const locked = await this.session.tryLock(key);
    if (!locked && options.dispatch === undefined) throw new CheckpointLeaseConflictError(key);

    let row: CheckpointRow | undefined;
    try {
      const owner = options.owner ?? `${this.ownerPrefix}:${++this.ownerSequence}`;
      const query = this.repository.sql.claim(
        key,
        owner,
        options.fingerprint ?? null,
        options.totalItems ?? null,
        options.dispatch ?? null,
        locked,
        options.queue ?? null,
        options.jobId ?? null,
      );
      row = (await this.repository.run('claim', key, query)).rows[0];
    } catch (error) {
      if (locked) await this.session.unlock(key);
      throw error;
    }
    if (row === undefined) {
      if (locked) await this.session.unlock(key);
      throw new CheckpointLeaseConflictError(key);
    }
    if (local !== undefined) {
      // A newer dispatch of the same job took over in this very process: stop the old attempt now.
      local.controller.abort(new CheckpointFencedError(key, local.epoch));
    }
    const record = toRecord(row);
    const lease: Lease = {
      key,
      epoch: record.epoch,
      dispatch: options.dispatch,
      locked,
      controller: new AbortController(),
    };
    this.leases.set(key, lease);
    this.session.announce(key);
    return {
      key,
      epoch: record.epoch,
      attempt: record.attempt,
      state: record.state,
      resumeFrom: record.currentIndex,
      cursor: record.cursor,
      currentBatchIndex: record.currentBatchIndex,
      processedBatches: record.processedBatches,
      totalBatches: record.totalBatches,
      totalItems: record.totalItems,
      fingerprint: record.fingerprint,
      intermediateResult: record.intermediateResult,
      metadata: record.metadata,
      result: record.result,
      skippedItems: record.skippedItems,
      redrive: record.redriveRequestedAt !== null,
      signal: lease.controller.signal,
    };
  }

  /**
   * Records progress after a batch: one UPDATE, applied only while `epoch` is current. With a
   * `manager` it runs inside the caller's transaction, so the batch's writes and the advance
   * commit together. Throws `CheckpointFencedError` when a newer attempt owns the key.
   */
  async advance(
    key: string,
    epoch: number,
    progress: AdvanceProgress,
    options: WriteOptions = {},
  ): Promise<void> {
    assertCount('currentIndex', progress.currentIndex);
    assertOptionalCount('currentBatchIndex', progress.currentBatchIndex);
    assertOptionalCount('processedBatches', progress.processedBatches);
    assertOptionalCount('totalBatches', progress.totalBatches);
    assertOptionalCount('totalItems', progress.totalItems);
    if (
      progress.processedBatches !== undefined &&
      progress.totalBatches !== undefined &&
      progress.totalBatches > 0 &&
      progress.processedBatches > progress.totalBatches
    ) {
      throw new CheckpointValidationError(
        messages.processedOverTotal(progress.processedBatches, progress.totalBatches),
      );
    }
    const query = this.repository.sql.advance(
      key,
      epoch,
      progress.currentIndex,
      progress.currentBatchIndex ?? null,
      progress.processedBatches ?? null,
      progress.totalBatches ?? null,
      progress.totalItems ?? null,
      this.json('cursor', progress.cursor),
      this.json('intermediateResult', progress.intermediateResult),
      this.json('metadata', progress.metadata),
    );
    await this.write('advance', key, epoch, query, options);
    const lease = this.leases.get(key);
    if (lease?.epoch === epoch && !lease.locked) {
      // A superseding attempt takes the lock as soon as the attempt it replaced lets go of it.
      lease.locked = await this.session.tryLock(key);
    }
  }

  /** Marks `key` completed with the work's return value and ends the attempt's ownership. */
  async complete(
    key: string,
    epoch: number,
    result?: unknown,
    options: WriteOptions = {},
  ): Promise<void> {
    const query = this.repository.sql.complete(key, epoch, this.json('result', result));
    try {
      await this.write('complete', key, epoch, query, options);
      if (options.manager !== undefined) {
        // The session's coalesced notice may fire before the caller's transaction commits, and a
        // watcher reading then would never see the completion: a NOTIFY in the transaction is
        // delivered exactly at its commit. Once per key, so its cost does not matter.
        await this.repository.run(
          'complete',
          key,
          this.repository.sql.notify([key]),
          options.manager,
        );
      }
    } finally {
      // Safe before an enclosing transaction commits: a claimant waits on the row lock it holds.
      await this.endLease(key, epoch);
    }
  }

  /** Marks `key` failed with the error; progress is kept for the next attempt. Ends ownership. */
  async fail(key: string, epoch: number, error: unknown): Promise<void> {
    const query = this.repository.sql.fail(
      key,
      epoch,
      this.json('error', describeError(error)) ?? 'null',
    );
    try {
      await this.write('fail', key, epoch, query, {});
    } finally {
      await this.endLease(key, epoch);
    }
  }

  /**
   * Hands `key` back without failing it (a graceful stop at a batch boundary), so the next attempt
   * resumes at once. Quietly does nothing to the row when the attempt was already superseded.
   */
  async release(key: string, epoch: number): Promise<void> {
    try {
      await this.repository.run('release', key, this.repository.sql.release(key, epoch));
      this.session.announce(key);
    } finally {
      await this.endLease(key, epoch);
    }
  }

  /** Starts `key` over from item 0 under a new fingerprint; the attempt keeps its ownership. */
  async restart(key: string, epoch: number, fingerprint?: string): Promise<void> {
    await this.write(
      'restart',
      key,
      epoch,
      this.repository.sql.restart(key, epoch, fingerprint ?? null),
      {},
    );
  }

  /** Keeps the progress of `key` but records a new input fingerprint. */
  async setFingerprint(key: string, epoch: number, fingerprint: string): Promise<void> {
    await this.write(
      'restart',
      key,
      epoch,
      this.repository.sql.setFingerprint(key, epoch, fingerprint),
      {},
    );
  }

  // --- inspection and housekeeping ------------------------------------------------------------

  /** The whole row of `key`, or null. */
  async find(key: string): Promise<CheckpointRecord | null> {
    const row = await this.findRow('find', key);
    return row === undefined ? null : toRecord(row);
  }

  /** Checkpoints, most recently updated first, optionally in one state. */
  async list(options: ListOptions = {}): Promise<CheckpointRecord[]> {
    const limit = options.limit ?? 100;
    assertCount('limit', limit);
    const { rows } = await this.repository.run(
      'list',
      undefined,
      this.repository.sql.list(options.state ?? null, limit),
    );
    return rows.map(toRecord);
  }

  /** Deletes checkpoints in a state (default: completed) not updated since `olderThan`. */
  async purge(options: PurgeOptions): Promise<number> {
    const olderThan =
      options.olderThan instanceof Date
        ? options.olderThan
        : new Date(
            Date.now() -
              1000 *
                ((options.olderThan.days ?? 0) * 86400 +
                  (options.olderThan.hours ?? 0) * 3600 +
                  (options.olderThan.minutes ?? 0) * 60 +
                  (options.olderThan.seconds ?? 0)),
          );
    if (Number.isNaN(olderThan.getTime()))
      throw new CheckpointValidationError('purge: olderThan is not a valid date');
    const state = options.state ?? CHECKPOINT_STATES.completed;
    const { rowCount } = await this.repository.run(
      'purge',
      undefined,
      this.repository.sql.purge(state, olderThan),
    );
    return rowCount;
  }

  /**
   * Progress of `key` as it changes, in any process (LISTEN/NOTIFY): the current value first,
   * then one value per change (changes closer together than ~100 ms are coalesced). Completes
   * when the key completes.
   */
  watch(key: string): Observable<CheckpointProgress> {
    assertKey(key);
    return new Observable<CheckpointProgress>((subscriber) => {
      let closed = false;
      let busy = false;
      let again = false;
      let lastSeen = '';
      let unsubscribe: (() => void) | undefined;
      const refresh = async (): Promise<void> => {
        if (busy) {
          again = true;
          return;
        }
        busy = true;
        try {
          do {
            again = false;
            const progress = await this.getProgress(key);
            if (closed || progress === null) continue;
            const seen = `${progress.lastUpdate.getTime()}:${progress.processedItems}:${progress.skippedItems}:${progress.state}`;
            if (seen === lastSeen) continue;
            lastSeen = seen;
            subscriber.next(progress);
            if (progress.state === CHECKPOINT_STATES.completed) {
              subscriber.complete();
              return;
            }
          } while (again && !closed);
        } catch (error) {
          subscriber.error(error);
        } finally {
          busy = false;
        }
      };
      this.session
        .subscribe((changed) => {
          if (changed === key) void refresh();
        })
        .then(
          (stop) => {
            unsubscribe = stop;
            if (closed) stop();
            else void refresh();
          },
          (error: unknown) => subscriber.error(error),
        );
      return () => {
        closed = true;
        unsubscribe?.();
      };
    });
  }

  /**
   * Finds running pg-boss keys on `queues` whose owner's session is gone (its process died),
   * marks each failed unless a new attempt already took it, and returns the ones it marked,
   * so that their jobs can be handed back to pg-boss at once instead of after expiry.
   * @internal used by CheckpointQueues
   */
  async abandonOrphans(
    queues: string[],
  ): Promise<Array<{ key: string; queue: string; jobId: string; dispatch: number }>> {
    if (queues.length === 0) return [];
    const { rows } = await this.repository.run<{
      key: string;
      epoch: string;
      queue: string;
      job_id: string;
      dispatch: number | null;
    }>('reap', undefined, this.repository.sql.orphans(queues));
    const abandoned = [];
    for (const row of rows) {
      const error = JSON.stringify({
        name: 'CheckpointWorkerLost',
        message: 'the worker process died',
      });
      const { rowCount } = await this.repository.run(
        'reap',
        row.key,
        this.repository.sql.abandon(row.key, Number(row.epoch), error),
      );
      if (rowCount === 0) continue;
      this.session.announce(row.key);
      abandoned.push({
        key: row.key,
        queue: row.queue,
        jobId: row.job_id,
        dispatch: row.dispatch ?? 0,
      });
    }
    return abandoned;
  }

  // --- lifecycle (called by the module) -------------------------------------------------------

  /** Fires the shutdown signal: every attempt of this process stops at its next batch boundary. */
  stopAttempts(): void {
    this.shutdown.abort(new Error(messages.shuttingDown()));
  }

  /** Returns the dedicated session to the pool; leases still held end with it. */
  async close(): Promise<void> {
    this.stopAttempts();
    await this.session.close();
  }

  // --- internals ------------------------------------------------------------------------------

  private async write(
    operation: string,
    key: string,
    epoch: number,
    query: { text: string; values: unknown[] },
    options: WriteOptions,
  ): Promise<void> {
    const { rowCount } = await this.repository.run(operation, key, query, options.manager);
    if (rowCount === 0) {
      const lease = this.leases.get(key);
      const error = new CheckpointFencedError(key, epoch);
      if (lease?.epoch === epoch) lease.controller.abort(error);
      throw error;
    }
    this.session.announce(key);
  }

  private async findRow(operation: string, key: string): Promise<CheckpointRow | undefined> {
    assertKey(key);
    return (await this.repository.run(operation, key, this.repository.sql.find(key))).rows[0];
  }

  private async endLease(key: string, epoch: number): Promise<void> {
    const lease = this.leases.get(key);
    if (lease?.epoch !== epoch) return;
    this.forget(lease);
    if (lease.locked) await this.session.unlock(key);
  }

  private forget(lease: Lease): void {
    if (this.leases.get(lease.key) === lease) this.leases.delete(lease.key);
  }

  private json(field: string, value: unknown): string | null {
    return toJson(field, value, this.options.maxPayloadBytes);
  }
}

/** Whether a claim with dispatch `mine` may take over from a live attempt with dispatch `theirs`. */
function supersedes(mine: number | undefined, theirs: number | undefined): boolean {
  return mine !== undefined && theirs !== undefined && mine > theirs;
}

function describeError(error: unknown): { name: string; message: string; stack?: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message, stack: error.stack }
    : { name: 'Error', message: String(error) };
}

export function toProgress(row: CheckpointRow): CheckpointProgress {
  const processedItems = Number(row.current_index);
  const totalItems = row.total_items === null ? null : Number(row.total_items);
  const doneThisAttempt = processedItems - Number(row.attempt_start_index);
  const seconds =
    row.attempt_started_at === null
      ? 0
      : (row.updated_at.getTime() - row.attempt_started_at.getTime()) / 1000;
  const itemsPerSecond = doneThisAttempt > 0 && seconds > 0 ? doneThisAttempt / seconds : null;
  const etaSeconds =
    row.state === CHECKPOINT_STATES.completed
      ? 0
      : totalItems !== null && itemsPerSecond !== null
        ? Math.max(0, totalItems - processedItems) / itemsPerSecond
        : null;
  return {
    key: row.key,
    currentBatch: Number(row.current_batch_index),
    totalBatches: Number(row.total_batches),
    processedBatches: Number(row.processed_batches),
    percentage:
      Number(row.total_batches) > 0
        ? Math.round((Number(row.processed_batches) / Number(row.total_batches)) * 100)
        : 0,
    processedItems,
    totalItems,
    state: row.state,
    attempt: row.attempt,
    itemsPerSecond,
    etaSeconds,
    skippedItems: Number(row.skipped_items),
    lastUpdate: row.updated_at,
  };
}
