import { Inject, Injectable, Logger } from '@nestjs/common';
import { hostname } from 'node:os';
import { Observable } from 'rxjs';
import type { EntityManager, QueryRunner } from 'typeorm';
import {
  CHECKPOINT_CONTROLS,
  CHECKPOINT_OPTIONS,
  CHECKPOINT_STATES,
  MAX_KEY_LENGTH,
  type CheckpointControl,
} from './checkpoint.constants.js';
import {
  CheckpointAbortedError,
  CheckpointCancelledError,
  CheckpointEpochMovedError,
  CheckpointFencedError,
  CheckpointLeaseConflictError,
  CheckpointPausedError,
  CheckpointLeaseLapsedError,
  CheckpointStoreError,
  CheckpointValidationError,
  isConnectionFailure,
} from './checkpoint.errors.js';
import type {
  AdvanceProgress,
  CheckpointData,
  CheckpointProgress,
  CheckpointRecord,
  Claim,
  ClaimOptions,
  ControlAction,
  ListOptions,
  PurgeOptions,
  RewindOptions,
  WriteOptions,
} from './checkpoint.interfaces.js';
import { messages } from './checkpoint.messages.js';
import type { ResolvedCheckpointOptions } from './checkpoint.options.js';
import { CheckpointRepository, toRecord, type CheckpointRow } from './checkpoint.repository.js';
import { CheckpointObservers } from './checkpoint.observers.js';
import { purgeKeys } from './checkpoint.purge.js';
import { decodeCursor, TIME_AND_KEY, toPage, type CheckpointPage } from './page-cursor.js';
import { CheckpointSession } from './checkpoint.session.js';
import {
  assertAge,
  assertCount,
  assertKey,
  assertOptionalCount,
  assertOptionalState,
  assertOptionalText,
  assertOwnership,
  assertText,
  assertWriteOptions,
  storableText,
  toJson,
} from './checkpoint.validation.js';

/** An attempt's ownership of a key, as this process knows it. */
interface Lease {
  key: string;
  epoch: number;
  dispatch: number | undefined;
  controller: AbortController;
  /** performance.now() when the lease was last known renewed (sent before the database set it). */
  confirmedAt: number;
}

/** A claim being made: the key is reserved before the first await, so a same-tick rival loses. */
interface Reservation {
  dispatch: number | undefined;
}

/** A running pg-boss key whose owner died, as the reaper saw it. */
export interface OrphanedJob {
  key: string;
  epoch: number;
  queue: string;
  jobId: string;
  dispatch: number;
  ownerPid: number | null;
  ownerStarted: string | null;
  /** The lease expired (a frozen or partitioned owner); otherwise its session is gone. */
  expired: boolean;
}

/**
 * Called when a key that is a chunk of a run completes: inside the completing transaction when
 * the completion had one (`manager`), right after the completing statement otherwise.
 * @internal the runs room subscribes to it
 */
export type ChunkCompletionListener = (
  completed: { key: string; runId: string },
  manager: EntityManager | undefined,
) => Promise<void>;

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
  private readonly logger = new Logger('Checkpoint');
  private readonly leases = new Map<string, Lease>();
  private readonly reservations = new Map<string, Reservation>();
  /** Announcements of writes made inside a transaction the library runs: sent after its commit. */
  private readonly deferred = new WeakMap<QueryRunner, Set<string>>();
  private renewTimer?: NodeJS.Timeout;
  private renewing = false;
  private readonly ownerPrefix = `${hostname()}:${process.pid}`;
  private ownerSequence = 0;
  private readonly shutdown = new AbortController();
  private controlListening?: Promise<unknown>;
  private readonly chunkCompletionListeners = new Set<ChunkCompletionListener>();
  /** @internal Where the core reports attempts and batches (the telemetry room listens). */
  readonly observers = new CheckpointObservers();

  constructor(
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
  ) {
    // A replaced session re-asserts every lease at once, under its new identity.
    session.onRestore(() => void this.renew());
    // Reconnection gave up: the leases cannot be renewed any more.
    session.onLoss(() => this.lapse(Number.POSITIVE_INFINITY));
  }

  /** Fired when the application shuts down: in-flight work stops at its next batch boundary. */
  get shutdownSignal(): AbortSignal {
    return this.shutdown.signal;
  }

  // --- the original service's five methods ---------------------------------------------------

  /**
   * Stores the checkpoint of `key`, replacing the previous one. One statement. With a `manager`
   * it runs inside the caller's transaction: the work's writes and the checkpoint commit together.
   */
  async saveCheckpoint(
    key: string,
    checkpoint: CheckpointData,
    options: WriteOptions = {},
  ): Promise<void> {
    assertKey(key);
    assertWriteOptions('saveCheckpoint', options);
    if (typeof checkpoint !== 'object' || checkpoint === null) {
      throw new CheckpointValidationError(messages.notAnObject('checkpoint', checkpoint));
    }
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
    await this.repository.run('save', key, query, options.manager);
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
    return this.claimAs(key, options, undefined);
  }

  /**
   * Claims `key` again for the attempt that held `previousEpoch`, after the database was
   * unreachable: it succeeds when no other attempt took the key meanwhile.
   * @internal used by the runner to resume in place
   */
  async reclaim(
    key: string,
    options: ClaimOptions,
    previousEpoch: number,
  ): Promise<ClaimedCheckpoint> {
    const local = this.leases.get(key);
    if (local?.epoch === previousEpoch) this.forget(local);
    return this.claimAs(key, options, previousEpoch);
  }

  private async claimAs(
    key: string,
    options: ClaimOptions,
    previousEpoch: number | undefined,
  ): Promise<ClaimedCheckpoint> {
    assertKey(key);
    assertOptionalCount('totalItems', options.totalItems);
    assertOptionalCount('dispatch', options.dispatch);
    for (const field of ['owner', 'fingerprint', 'queue', 'jobId'] as const) {
      assertOptionalText(field, options[field], MAX_KEY_LENGTH);
    }
    // Reserved before the first await: a second call in the same tick loses here, at once.
    const local = this.leases.get(key);
    const rival = this.reservations.get(key);
    if (
      (local !== undefined && !supersedes(options.dispatch, local.dispatch)) ||
      (rival !== undefined && !supersedes(options.dispatch, rival.dispatch))
    ) {
      throw this.conflict(key);
    }
    const reservation: Reservation = { dispatch: options.dispatch };
    this.reservations.set(key, reservation);
    let row: CheckpointRow | undefined;
    let sent: number;
    try {
      // Operators' requests reach this process's attempts between batches too (LISTEN).
      await this.listenForControl();
      const identity = await this.session.identity();
      const owner = options.owner ?? `${this.ownerPrefix}:${++this.ownerSequence}`;
      const query = this.repository.sql.claim(
        key,
        owner,
        options.fingerprint ?? null,
        options.totalItems ?? null,
        options.dispatch ?? null,
        previousEpoch ?? null,
        options.queue ?? null,
        options.jobId ?? null,
        identity.pid,
        identity.started,
        this.options.leaseTtlMs,
      );
      sent = performance.now();
      row = (await this.repository.run('claim', key, query)).rows[0];
    } finally {
      if (this.reservations.get(key) === reservation) this.reservations.delete(key);
    }
    if (row === undefined) {
      const control = await this.refusedControl(key);
      if (control !== null) throw controlError(key, control);
      throw this.conflict(key);
    }
    const replaced = this.leases.get(key);
    if (replaced !== undefined) {
      // A newer dispatch of the same job took over in this very process: stop the old attempt now.
      replaced.controller.abort(new CheckpointFencedError(key, replaced.epoch));
    }
    const record = toRecord(row);
    const lease: Lease = {
      key,
      epoch: record.epoch,
      dispatch: options.dispatch,
      controller: new AbortController(),
      confirmedAt: sent,
    };
    this.leases.set(key, lease);
    this.scheduleRenewal();
    this.session.announce(key);
    this.observers.emit('attemptStarted', {
      key,
      epoch: record.epoch,
      attempt: record.attempt,
      resumeFrom: record.currentIndex,
      takeover: (row as CheckpointRow & { prior_state?: string }).prior_state === 'running',
    });
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
      run: record.runId === null ? null : { id: record.runId, chunk: record.runChunk ?? 0 },
      signal: lease.controller.signal,
    };
  }

  /**
   * Records progress after a batch: one UPDATE, applied only while `epoch` is current. With a
   * `manager` it runs inside the caller's transaction, so the batch's writes and the advance
   * commit together. Throws `CheckpointFencedError` when a newer attempt owns the key.
   * Batch counts left out are derived in the statement from the stored row: an advance past the
   * stored position counts one more batch, and the total follows from `totalItems` (given or
   * stored) at this batch's size, so `getProgress().percentage` moves with `currentIndex` alone.
   */
  async advance(
    key: string,
    epoch: number,
    progress: AdvanceProgress,
    options: WriteOptions = {},
  ): Promise<void> {
    assertOwnership(key, epoch);
    assertWriteOptions('advance', options);
    if (typeof progress !== 'object' || progress === null) {
      throw new CheckpointValidationError(messages.notAnObject('progress', progress));
    }
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
    if (progress.totalItems !== undefined && progress.currentIndex > progress.totalItems) {
      throw new CheckpointValidationError(
        messages.indexOverTotal(progress.currentIndex, progress.totalItems),
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
      // In the library's own batch transaction, bound how long it may hold the row lock idle.
      options.manager?.queryRunner !== undefined && this.deferred.has(options.manager.queryRunner)
        ? this.options.leaseTtlMs
        : null,
    );
    await this.write('advance', key, epoch, query, options);
  }

  /** Marks `key` completed with the work's return value and ends the attempt's ownership. */
  async complete(
    key: string,
    epoch: number,
    result?: unknown,
    options: WriteOptions = {},
  ): Promise<void> {
    assertOwnership(key, epoch);
    assertWriteOptions('complete', options);
    const query = this.repository.sql.complete(key, epoch, this.json('result', result));
    try {
      const { rows } = await this.write<{ run_id: string | null }>(
        'complete',
        key,
        epoch,
        query,
        options,
      );
      this.observers.emit('attemptEnded', { key, epoch, outcome: 'completed' });
      const runner = options.manager?.queryRunner;
      if (options.manager !== undefined && (runner === undefined || !this.deferred.has(runner))) {
        // The session's coalesced notice may fire before the caller's transaction commits, and a
        // watcher reading then would never see the completion: a NOTIFY in the transaction is
        // delivered exactly at its commit. Once per key, so its cost does not matter. (The
        // library's own transactions announce after their commit instead.)
        await this.repository.run(
          'complete',
          key,
          this.repository.sql.notify([key]),
          options.manager,
        );
      }
      const runId = rows[0]?.run_id ?? null;
      if (runId !== null) {
        for (const listener of this.chunkCompletionListeners) {
          await listener({ key, runId }, options.manager);
        }
      }
    } finally {
      // Safe before an enclosing transaction commits: a claimant waits on the row lock it holds.
      this.endLease(key, epoch);
    }
  }

  /** Marks `key` failed with the error; progress is kept for the next attempt. Ends ownership. */
  async fail(key: string, epoch: number, error: unknown): Promise<void> {
    assertOwnership(key, epoch);
    const query = this.repository.sql.fail(
      key,
      epoch,
      this.json('error', describeError(error)) ?? 'null',
    );
    try {
      await this.write('fail', key, epoch, query, {});
      this.observers.emit('attemptEnded', { key, epoch, outcome: 'failed', error });
    } finally {
      this.endLease(key, epoch);
    }
  }

  /**
   * Hands `key` back without failing it (a graceful stop at a batch boundary), so the next attempt
   * resumes at once. Quietly does nothing to the row when the attempt was already superseded.
   */
  async release(key: string, epoch: number): Promise<void> {
    assertOwnership(key, epoch);
    try {
      const { rows } = await this.repository.run<{ state: 'released' | 'paused' | 'cancelled' }>(
        'release',
        key,
        this.repository.sql.release(key, epoch),
      );
      this.session.announce(key);
      if (rows[0] !== undefined) {
        this.observers.emit('attemptEnded', { key, epoch, outcome: rows[0].state });
      }
    } finally {
      this.endLease(key, epoch);
    }
  }

  /** Starts `key` over from item 0 under a new fingerprint; the attempt keeps its ownership. */
  async restart(key: string, epoch: number, fingerprint?: string): Promise<void> {
    assertOwnership(key, epoch);
    assertOptionalText('fingerprint', fingerprint, MAX_KEY_LENGTH);
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
    assertOwnership(key, epoch);
    assertText('fingerprint', fingerprint, MAX_KEY_LENGTH);
    await this.write(
      'restart',
      key,
      epoch,
      this.repository.sql.setFingerprint(key, epoch, fingerprint),
      {},
    );
  }

  // --- operators' control -----------------------------------------------------------------------

  /**
   * Asks `key` to pause, from any process: a running attempt stops at its next batch boundary
   * (it hears the request within about a second) and the key becomes `paused`, progress kept; a
   * key nobody runs is paused at once. A paused key is not run again until `resume`; a paused
   * pg-boss job leaves the queue without spending a retry. False when the key does not exist or is
   * completed or cancelled.
   */
  async pause(key: string): Promise<boolean> {
    return (await this.control(key, CHECKPOINT_CONTROLS.pause)) > 0;
  }

  /**
   * Withdraws a pause: the key can be claimed again (a paused pg-boss job goes back to the queue,
   * through any process that works its queue). False when the key was not paused.
   */
  async resume(key: string): Promise<boolean> {
    return (await this.control(key, 'resume')) > 0;
  }

  /**
   * Cancels `key`, from any process: a running attempt stops at its next batch boundary and the
   * key becomes `cancelled`; committed work stays, and it never runs again. False when the key does
   * not exist or is already completed or cancelled.
   */
  async cancel(key: string): Promise<boolean> {
    return (await this.control(key, CHECKPOINT_CONTROLS.cancel)) > 0;
  }

  /**
   * Pauses, resumes or cancels every key of a run (rows with this `run_id`); returns how many rows
   * took the request. With a `manager`, inside the caller's transaction. Used by the runs service.
   */
  async controlRun(
    runId: string,
    action: ControlAction,
    options: WriteOptions = {},
  ): Promise<number> {
    assertKey(runId);
    assertWriteOptions('controlRun', options);
    const sql = this.repository.sql;
    const query =
      action === 'pause'
        ? sql.pauseRun(runId)
        : action === 'cancel'
          ? sql.cancelRun(runId)
          : sql.resumeRun(runId);
    const { rows } = await this.repository.run<{ key: string }>(
      action,
      undefined,
      query,
      options.manager,
    );
    for (const row of rows) this.obeyLocally(action, row.key);
    return rows.length;
  }

  /**
   * Moves the resume point of `key` back to item `toIndex` (0 starts over), only while its epoch
   * is still `expectedEpoch` (read it with `find`), so an operator never races a worker: when the
   * key ran or changed meanwhile it throws `CheckpointEpochMovedError` and changes nothing. The
   * key must have no live attempt (pause it first). For page-by-page sources give the `cursor` to
   * resume after. Returns the key's new epoch.
   */
  async rewind(key: string, toIndex: number, options: RewindOptions): Promise<number> {
    assertKey(key);
    assertCount('toIndex', toIndex);
    assertCount('expectedEpoch', options?.expectedEpoch);
    const query = this.repository.sql.rewind(
      key,
      toIndex,
      options.expectedEpoch,
      this.json('cursor', options.cursor),
    );
    const { rows } = await this.repository.run<{ epoch: string }>('rewind', key, query);
    if (rows[0] !== undefined) {
      this.session.announce(key);
      return Number(rows[0].epoch);
    }
    // Refused: find out why (off any hot path) and say so.
    const row = await this.findRow('rewind', key);
    if (row === undefined || Number(row.epoch) !== options.expectedEpoch) {
      throw new CheckpointEpochMovedError(
        key,
        options.expectedEpoch,
        row === undefined ? null : Number(row.epoch),
      );
    }
    if (Number(row.current_index) < toIndex) {
      throw new CheckpointValidationError(
        messages.rewindPastProgress(key, toIndex, Number(row.current_index)),
      );
    }
    throw new CheckpointLeaseConflictError(key, messages.rewindRunning(key));
  }

  /**
   * Calls `listener` with each operator request (`pause`, `resume`, `cancel` and the key) made in
   * any process. For the library's own rooms (the pg-boss integration moves jobs with it).
   */
  async onControl(listener: (action: ControlAction, key: string) => void): Promise<() => void> {
    return this.session.subscribeControl((action, key) => {
      if (isControlAction(action)) listener(action, key);
    });
  }

  // --- inspection and housekeeping ------------------------------------------------------------

  /** The whole row of `key`, or null. */
  async find(key: string): Promise<CheckpointRecord | null> {
    const row = await this.findRow('find', key);
    return row === undefined ? null : toRecord(row);
  }

  /**
   * A page of checkpoints, newest first (by creation, then key), optionally in one state. Pass
   * the page's `after` for the next one while `more` is true; every page costs the same.
   */
  async list(options: ListOptions = {}): Promise<CheckpointPage<CheckpointRecord>> {
    const limit = options.limit ?? 100;
    assertCount('limit', limit);
    assertOptionalState('state', options.state);
    const after =
      options.after === undefined ? null : decodeCursor('list', options.after, TIME_AND_KEY);
    const { rows } = await this.repository.run<CheckpointRow & { page_at: string }>(
      'list',
      undefined,
      this.repository.sql.list(options.state ?? null, limit, after),
    );
    return toPage(rows, limit, (row) => [row.page_at, row.key], toRecord);
  }

  /**
   * Deletes checkpoints in a state (default: completed) not updated since `olderThan`, in short
   * slices that skip keys an attempt holds; returns how many keys went.
   */
  async purge(options: PurgeOptions): Promise<number> {
    assertOptionalState('state', options?.state);
    assertAge(options?.olderThan);
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
    return (await purgeKeys(this.repository, state, olderThan)).keys;
  }

  /**
   * Progress of `key` as it changes, in any process (LISTEN/NOTIFY): the current value first,
   * then one value per change (changes closer together than ~100 ms are coalesced). Reads once
   * more a moment after the last change (so that no final state is missed), and completes with
   * the final state when the key completes or is cancelled. A database failure ends it with a
   * CheckpointStoreError.
   */
  watch(key: string): Observable<CheckpointProgress> {
    assertKey(key);
    return new Observable<CheckpointProgress>((subscriber) => {
      let closed = false;
      let busy = false;
      let again = false;
      let lastSeen = '';
      let trailing: NodeJS.Timeout | undefined;
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
            if (FINAL_STATES.has(progress.state)) {
              closed = true;
              subscriber.complete();
              return;
            }
          } while (again && !closed);
        } catch (error) {
          closed = true;
          subscriber.error(
            error instanceof CheckpointStoreError
              ? error
              : new CheckpointStoreError('watch', key, error),
          );
        } finally {
          busy = false;
        }
      };
      const changed = () => {
        void refresh();
        // Once more a moment after the last change: a notification can overtake its commit.
        clearTimeout(trailing);
        trailing = setTimeout(() => void refresh(), WATCH_TRAILING_READ_MS).unref();
      };
      // Notifications sent while the session was being replaced are lost: read again.
      const stopRestore = this.session.onRestore(changed);
      this.session
        .subscribe((changedKey) => {
          if (changedKey === key) changed();
        })
        .then(
          (stop) => {
            unsubscribe = stop;
            if (closed) stop();
            else void refresh();
          },
          (error: unknown) => {
            closed = true;
            subscriber.error(
              error instanceof CheckpointStoreError
                ? error
                : new CheckpointStoreError('watch', key, error),
            );
          },
        );
      return () => {
        closed = true;
        clearTimeout(trailing);
        stopRestore();
        unsubscribe?.();
      };
    });
  }

  /**
   * Keys that changed in any process (LISTEN/NOTIFY; changes closer together than ~100 ms are
   * coalesced), for live views over many keys such as a dashboard's.
   */
  changes(): Observable<string> {
    return new Observable<string>((subscriber) => {
      let closed = false;
      let stop: (() => void) | undefined;
      this.session
        .subscribe((key) => subscriber.next(key))
        .then(
          (unsubscribe) => {
            stop = unsubscribe;
            if (closed) unsubscribe();
          },
          (error: unknown) => subscriber.error(error),
        );
      return () => {
        closed = true;
        stop?.();
      };
    });
  }

  /**
   * Running pg-boss keys (of any queue) whose owner is dead: its lease expired or its lease
   * session is gone. The reaper confirms a vanished session a grace period later (a live owner
   * reconnecting re-asserts its lease meanwhile) before it calls `abandon`.
   * @internal used by the reaper
   */
  async findOrphans(): Promise<OrphanedJob[]> {
    const { rows } = await this.repository.run<{
      key: string;
      epoch: string;
      queue: string;
      job_id: string;
      dispatch: number | null;
      owner_pid: number | null;
      owner_started: string | null;
      expired: boolean;
    }>('reap', undefined, this.repository.sql.orphans());
    return rows.map((row) => ({
      key: row.key,
      epoch: Number(row.epoch),
      queue: row.queue,
      jobId: row.job_id,
      dispatch: row.dispatch ?? 0,
      ownerPid: row.owner_pid,
      ownerStarted: row.owner_started,
      expired: row.expired,
    }));
  }

  /**
   * Marks a dead owner's attempt failed, unless it came back or a new attempt took the key
   * meanwhile (decided in the one statement). True when it was marked: the caller hands the job
   * back to pg-boss.
   * @internal used by the reaper
   */
  async abandon(orphan: OrphanedJob): Promise<boolean> {
    const error = JSON.stringify({
      name: 'CheckpointWorkerLost',
      message: orphan.expired
        ? 'the worker did not renew its lease in time (frozen or cut off)'
        : 'the worker process died',
    });
    const { rowCount } = await this.repository.run(
      'reap',
      orphan.key,
      this.repository.sql.abandon(
        orphan.key,
        orphan.epoch,
        error,
        orphan.ownerPid,
        orphan.ownerStarted,
      ),
    );
    if (rowCount > 0) {
      this.session.announce(orphan.key);
      this.observers.emit('reaped', { key: orphan.key, epoch: orphan.epoch });
    }
    return rowCount > 0;
  }

  /**
   * Resolves once the database answers again (a statement on a pooled connection and the lease
   * session both work), retrying with a short backoff; throws CheckpointStoreError after
   * `withinMs`, or at once when the application shuts down.
   * @internal used by the runner to resume in place
   */
  async waitForDatabase(withinMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + withinMs;
    let delay = 100;
    for (;;) {
      try {
        await this.repository.run('ping', undefined, this.repository.sql.ping());
        await this.session.identity();
        return;
      } catch (error) {
        if (!isConnectionFailure(error) || Date.now() + delay > deadline || signal?.aborted) {
          throw new CheckpointStoreError(
            'wait for the database',
            undefined,
            new Error(messages.databaseUnavailable(withinMs, (error as Error).message), {
              cause: error,
            }),
          );
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(1000, delay * 2);
      }
    }
  }

  /**
   * Sends the announcements of writes made in `runner`'s transaction, once it committed (a
   * watcher reading before the commit would see the old state and never look again).
   * @internal used by the batch loop and the runner
   */
  deferAnnouncements(runner: QueryRunner): () => void {
    const keys = new Set<string>();
    this.deferred.set(runner, keys);
    return () => {
      this.deferred.delete(runner);
      for (const key of keys) this.session.announce(key);
    };
  }

  /**
   * Why this process's checkpoint session was lost, while it is (no round trip).
   * @internal used by the health indicator
   */
  get sessionLost(): string | undefined {
    return this.session.lost;
  }

  /**
   * Whether this process's checkpoint session works: null when it does, else why it was lost.
   * A lost session is tried once more (one round trip), so that the answer recovers with it.
   */
  async sessionProblem(): Promise<string | null> {
    const lost = this.session.lost;
    if (lost === undefined) return null;
    try {
      await this.session.ping();
      return null;
    } catch {
      return lost;
    }
  }

  // --- lifecycle (called by the module) -------------------------------------------------------

  /** Fires the shutdown signal: every attempt of this process stops at its next batch boundary. */
  stopAttempts(): void {
    this.shutdown.abort(new Error(messages.shuttingDown()));
  }

  /** Returns the dedicated session to the pool; leases still held end with it. */
  async close(): Promise<void> {
    this.stopAttempts();
    clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    await this.session.close();
  }

  /**
   * Subscribes to the completion of keys that are chunks of a run; returns the unsubscribe.
   * @internal used by CheckpointRuns
   */
  onChunkCompleted(listener: ChunkCompletionListener): () => void {
    this.chunkCompletionListeners.add(listener);
    return () => this.chunkCompletionListeners.delete(listener);
  }

  // --- internals ------------------------------------------------------------------------------

  private async write<R = CheckpointRow>(
    operation: string,
    key: string,
    epoch: number,
    query: { text: string; values: unknown[] },
    options: WriteOptions,
  ): Promise<{ rows: R[] }> {
    const { rows, rowCount } = await this.repository.run<R>(operation, key, query, options.manager);
    if (rowCount === 0) {
      this.observers.emit('fenced', { key, epoch });
      const lease = this.leases.get(key);
      const error = new CheckpointFencedError(key, epoch);
      if (lease?.epoch === epoch) lease.controller.abort(error);
      throw error;
    }
    const deferred =
      options.manager?.queryRunner === undefined
        ? undefined
        : this.deferred.get(options.manager.queryRunner);
    if (deferred !== undefined) deferred.add(key);
    else this.session.announce(key);
    return { rows };
  }

  private async control(key: string, action: ControlAction): Promise<number> {
    assertKey(key);
    const sql = this.repository.sql;
    const query =
      action === 'pause' ? sql.pause(key) : action === 'cancel' ? sql.cancel(key) : sql.resume(key);
    const { rows } = await this.repository.run(action, key, query);
    if (rows.length > 0) this.obeyLocally(action, key);
    return rows.length;
  }

  /** An attempt of this very process stops without waiting for the notification to come back. */
  private obeyLocally(action: ControlAction, key: string): void {
    if (action === 'resume') return;
    this.leases.get(key)?.controller.abort(controlError(key, action));
  }

  private listenForControl(): Promise<unknown> {
    this.controlListening ??= this.session
      .subscribeControl((action, key) => {
        if (action === 'pause' || action === 'cancel') this.obeyLocally(action, key);
      })
      .catch((error: Error) => {
        // The lease renewal still reads the requests (every leaseTtlMs / 3); try LISTEN again later.
        this.controlListening = undefined;
        logger.warn(`could not listen for control requests: ${error.message}`);
      });
    return this.controlListening;
  }

  private conflict(key: string): CheckpointLeaseConflictError {
    this.observers.emit('conflict', { key });
    return new CheckpointLeaseConflictError(key);
  }

  /** Why a claim on `key` was refused: an operator's request, or null (another live owner). */
  private async refusedControl(key: string): Promise<CheckpointControl | null> {
    // When no live attempt owns the key, settle it as asked (decided in the statement).
    const { rows } = await this.repository.run<{ control: CheckpointControl }>(
      'claim',
      key,
      this.repository.sql.settleControl(key),
    );
    if (rows[0] === undefined) return (await this.findRow('claim', key))?.control ?? null;
    this.session.announce(key);
    return rows[0].control;
  }

  private async findRow(operation: string, key: string): Promise<CheckpointRow | undefined> {
    assertKey(key);
    return (await this.repository.run(operation, key, this.repository.sql.find(key))).rows[0];
  }

  private endLease(key: string, epoch: number): void {
    const lease = this.leases.get(key);
    if (lease?.epoch === epoch) this.forget(lease);
  }

  /** Renews every lease of this process every third of the TTL while it holds any. */
  private scheduleRenewal(): void {
    if (this.renewTimer !== undefined || this.shutdown.signal.aborted) return;
    this.renewTimer = setTimeout(
      () => {
        this.renewTimer = undefined;
        // Checked on every tick, even while a renewal hangs: a lease is given up on time.
        this.lapse(performance.now() - this.options.leaseTtlMs);
        if (this.leases.size > 0) this.scheduleRenewal();
        void this.renew();
      },
      Math.floor(this.options.leaseTtlMs / 3),
    ).unref();
  }

  /**
   * One statement renews (or, after a new session, re-asserts) every lease of the process. A
   * lease missing from the result was taken over: its attempt is fenced. A lease that has not
   * been renewed for a whole TTL is given up by its attempt (another may own the key by now).
   */
  private async renew(): Promise<void> {
    if (this.renewing || this.leases.size === 0) return;
    this.renewing = true;
    const leases = [...this.leases.values()];
    const sent = performance.now();
    const ttl = this.options.leaseTtlMs;
    // A renewal that hangs (a silent partition) must not hold the session forever.
    const hung = setTimeout(
      () => this.session.abandonConnection(`lease renewal got no answer within ${ttl} ms`),
      ttl,
    ).unref();
    try {
      const renewed = await this.session.renew(
        leases.map((lease) => lease.key),
        leases.map((lease) => lease.epoch),
      );
      for (const lease of leases) {
        if (renewed.has(lease.key)) {
          lease.confirmedAt = sent;
          // An operator's request that this process did not hear (see CheckpointSession).
          const control = renewed.get(lease.key) ?? null;
          if (control !== null) lease.controller.abort(controlError(lease.key, control));
        } else if (this.leases.get(lease.key) === lease) {
          lease.controller.abort(new CheckpointFencedError(lease.key, lease.epoch));
          this.forget(lease);
        }
      }
    } catch (error) {
      this.logger.warn(`could not renew leases: ${(error as Error).message}`);
    } finally {
      clearTimeout(hung);
      this.renewing = false;
    }
    this.lapse(performance.now() - ttl);
  }

  /** Gives up the leases last confirmed before `before` (performance.now() time). */
  private lapse(before: number): void {
    for (const lease of [...this.leases.values()]) {
      if (lease.confirmedAt >= before) continue;
      lease.controller.abort(
        new CheckpointLeaseLapsedError(
          lease.key,
          messages.leaseLapsed(lease.key, this.options.leaseTtlMs),
        ),
      );
      this.forget(lease);
    }
  }

  private forget(lease: Lease): void {
    if (this.leases.get(lease.key) === lease) this.leases.delete(lease.key);
  }

  private json(field: string, value: unknown): string | null {
    return toJson(field, value, this.options.maxPayloadBytes);
  }
}

const logger = new Logger('Checkpoint');

/** The typed reason an attempt stops for when an operator asked. */
function controlError(key: string, control: CheckpointControl): CheckpointAbortedError {
  return control === CHECKPOINT_CONTROLS.pause
    ? new CheckpointPausedError(key)
    : new CheckpointCancelledError(key);
}

function isControlAction(action: string): action is ControlAction {
  return action === 'pause' || action === 'resume' || action === 'cancel';
}

/** States after which a key changes no more on its own: watch() completes on them. */
const FINAL_STATES: ReadonlySet<string> = new Set([
  CHECKPOINT_STATES.completed,
  CHECKPOINT_STATES.cancelled,
]);
/** How long after the last change watch() reads once more. */
const WATCH_TRAILING_READ_MS = 250;

/** Whether a claim with dispatch `mine` may take over from a live attempt with dispatch `theirs`. */
function supersedes(mine: number | undefined, theirs: number | undefined): boolean {
  return mine !== undefined && theirs !== undefined && mine > theirs;
}

function describeError(error: unknown): { name: string; message: string; stack?: string } {
  // Recorded whatever it says: a NUL or lone surrogate in a message must not lose the failure.
  const text = (value: unknown) => storableText(String(value));
  if (!(error instanceof Error)) return { name: 'Error', message: text(error) };
  const described: { name: string; message: string; stack?: string } = {
    name: text(error.name),
    message: text(error.message),
  };
  if (error.stack !== undefined) described.stack = text(error.stack);
  return described;
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
