import { hostname } from 'node:os';
import { MAX_KEY_LENGTH } from '../checkpoint.constants.js';
import {
  CheckpointFencedError,
  CheckpointLeaseConflictError,
  CheckpointStoreError,
  CheckpointValidationError,
  controlError,
} from '../checkpoint.errors.js';
import type {
  AdvanceProgress,
  Claim,
  ClaimOptions,
  WriteOptions,
} from '../checkpoint.interfaces.js';
import { messages } from '../checkpoint.messages.js';
import type { CheckpointObservers } from '../checkpoint.observers.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import {
  toRecord,
  type CheckpointRepository,
  type CheckpointRow,
  type QueryOutcome,
} from '../checkpoint.repository.js';
import { FENCED_ADVANCE, type CheckpointSql, type Query } from '../checkpoint.sql.js';
import type { CheckpointSession } from '../checkpoint.session.js';
import type { QueryRunner } from 'typeorm';
import {
  assertCount,
  assertKey,
  assertOptionalCount,
  assertOptionalText,
  assertOwnership,
  assertText,
  assertWriteOptions,
  storableText,
  toJson,
} from '../checkpoint.validation.js';
import type { CheckpointControls } from '../control/checkpoint-control.js';
import type { CheckpointLeases, Lease, Reservation } from '../leases/checkpoint-leases.js';
import type { CheckpointAnnouncements } from '../progress/checkpoint-announcements.js';
import type { ChunkCompletions } from './chunk-completions.js';

/** What a claim returns: the resume point, the epoch, and a signal fired when ownership is lost. */
export interface ClaimedCheckpoint extends Claim {
  signal: AbortSignal;
}

/**
 * The ownership protocol: claim, advance, complete, fail, release. Each write is one statement
 * applied only while the attempt's epoch is current; a write that affects no row is fenced.
 * @internal the façade's ownership calls
 */
export class CheckpointOwnership {
  private readonly ownerPrefix = `${hostname()}:${process.pid}`;
  private ownerSequence = 0;

  constructor(
    private readonly options: ResolvedCheckpointOptions,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
    private readonly leases: CheckpointLeases,
    private readonly controls: CheckpointControls,
    private readonly announcements: CheckpointAnnouncements,
    private readonly chunkCompletions: ChunkCompletions,
    private readonly observers: CheckpointObservers,
  ) {}

  /** See CheckpointService.claim. */
  async claim(key: string, options: ClaimOptions = {}): Promise<ClaimedCheckpoint> {
    return this.claimAs(key, options, undefined);
  }

  /** See CheckpointService.reclaim. */
  async reclaim(
    key: string,
    options: ClaimOptions,
    previousEpoch: number,
  ): Promise<ClaimedCheckpoint> {
    const local = this.leases.get(key);
    if (local?.epoch === previousEpoch) this.leases.forget(local);
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
    const rival = this.leases.reservations.get(key);
    if (
      (local !== undefined && !supersedes(options.dispatch, local.dispatch)) ||
      (rival !== undefined && !supersedes(options.dispatch, rival.dispatch))
    ) {
      throw this.conflict(key);
    }
    const reservation: Reservation = { dispatch: options.dispatch };
    this.leases.reservations.set(key, reservation);
    let row: CheckpointRow | undefined;
    let sent: number;
    try {
      // Operators' requests reach this process's attempts between batches too (LISTEN).
      await this.controls.listenForControl();
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
      if (this.leases.reservations.get(key) === reservation) this.leases.reservations.delete(key);
    }
    if (row === undefined) {
      const control = await this.controls.refusedControl(key);
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
    this.leases.hold(lease);
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

  /** See CheckpointService.advance. */
  async advance(
    key: string,
    epoch: number,
    progress: AdvanceProgress,
    options: WriteOptions = {},
  ): Promise<void> {
    assertOwnership(key, epoch);
    assertWriteOptions('advance', options);
    const query = this.advanceQuery(key, epoch, progress, this.repository.sql.advance);
    await this.write('advance', key, epoch, query, options);
  }

  /**
   * The advance of a batch in the library's own transaction `runner`, sent together with its
   * COMMIT (one round trip): fenced, the advance fails in the database, the COMMIT rolls the
   * batch back, and the call throws CheckpointFencedError as advance() does. With `beginNext`,
   * where the connection allows it, the next batch's transaction begins in the same message
   * and `runner` is left in it: the result says whether it was.
   */
  async advanceAndCommit(
    key: string,
    epoch: number,
    progress: AdvanceProgress,
    runner: QueryRunner,
    beginNext = false,
  ): Promise<boolean> {
    assertOwnership(key, epoch);
    const folded = beginNext && this.repository.beginsWithCommit;
    // Sent apart from its COMMIT (a pg without pipelining), the advance bounds how long the
    // transaction may then hold the row's lock idle; in one message with it, nothing is idle.
    const idleTimeoutMs = folded ? null : this.options.leaseTtlMs;
    const query = this.advanceQuery(
      key,
      epoch,
      progress,
      this.repository.sql.advanceAtCommit,
      idleTimeoutMs,
    );
    const { advanceCommitBegin } = this.repository.sql;
    await this.write('advance', key, epoch, query, { manager: runner.manager }, async () => {
      try {
        return folded
          ? await this.repository.commitAndBeginNext(
              'advance',
              key,
              { prepare: advanceCommitBegin.prepare, text: advanceCommitBegin.text(query) },
              runner,
            )
          : await this.repository.runAndCommit('advance', key, query, runner);
      } catch (error) {
        if (isFencedAdvance(error)) return { rows: [], rowCount: 0 };
        throw error;
      }
    });
    return folded;
  }

  /** Validates an advance and builds its statement with `statement`. */
  private advanceQuery(
    key: string,
    epoch: number,
    progress: AdvanceProgress,
    statement: CheckpointSql['advance'],
    idleTimeoutMs: number | null = null,
  ): Query {
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
    return statement(
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
      idleTimeoutMs,
    );
  }

  /** See CheckpointService.complete. */
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
      if (options.manager !== undefined && !this.announcements.isDeferring(options.manager)) {
        // The session's coalesced notice may fire before the caller's transaction commits, and a
        // watcher reading then would never see the completion: a NOTIFY in the transaction is
        // delivered exactly at its commit. Once per key, so its cost does not matter. (The
        // library's own transactions announce after their commit instead.)
        await this.repository.run(
          'complete',
          key,
          this.repository.sql.notify([key], []),
          options.manager,
        );
      }
      const runId = rows[0]?.run_id ?? null;
      if (runId !== null) await this.chunkCompletions.completed({ key, runId }, options.manager);
    } finally {
      // Safe before an enclosing transaction commits: a claimant waits on the row lock it holds.
      this.leases.end(key, epoch);
    }
  }

  /** See CheckpointService.fail. */
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
      this.leases.end(key, epoch);
    }
  }

  /** See CheckpointService.release. */
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
      this.leases.end(key, epoch);
    }
  }

  /** See CheckpointService.restart. */
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

  /** See CheckpointService.setFingerprint. */
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

  /** One fenced write: no row affected means a newer attempt owns the key. */
  private async write<R = CheckpointRow>(
    operation: string,
    key: string,
    epoch: number,
    query: Query,
    options: WriteOptions,
    send: () => Promise<QueryOutcome<R>> = () =>
      this.repository.run<R>(operation, key, query, options.manager),
  ): Promise<{ rows: R[] }> {
    const { rows, rowCount } = await send();
    if (rowCount === 0) {
      this.observers.emit('fenced', { key, epoch });
      const lease = this.leases.get(key);
      const error = new CheckpointFencedError(key, epoch);
      if (lease?.epoch === epoch) lease.controller.abort(error);
      throw error;
    }
    this.announcements.changed(
      key,
      options.manager,
      operation === 'advance' ? 'progress' : 'change',
    );
    return { rows };
  }

  private conflict(key: string): CheckpointLeaseConflictError {
    this.observers.emit('conflict', { key });
    return new CheckpointLeaseConflictError(key);
  }

  private json(field: string, value: unknown): string | null {
    return toJson(field, value, this.options.maxPayloadBytes);
  }
}

/** Whether `error` is advanceAtCommit refusing a fenced write (see checkpoint.sql.ts). */
function isFencedAdvance(error: unknown): boolean {
  if (!(error instanceof CheckpointStoreError)) return false;
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  return (
    cause?.code === '22P02' &&
    typeof cause.message === 'string' &&
    cause.message.includes(FENCED_ADVANCE)
  );
}

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
