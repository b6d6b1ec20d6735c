import { Inject, Injectable } from '@nestjs/common';
import type { Observable } from 'rxjs';
import type { QueryRunner } from 'typeorm';
import { CHECKPOINT_OPTIONS } from './checkpoint.constants.js';
import type {
  AdvanceProgress,
  CheckpointData,
  CheckpointProgress,
  CheckpointRecord,
  ClaimOptions,
  ControlAction,
  ListOptions,
  PurgeOptions,
  RewindOptions,
  WriteOptions,
} from './checkpoint.interfaces.js';
import { CheckpointObservers } from './checkpoint.observers.js';
import type { ResolvedCheckpointOptions } from './checkpoint.options.js';
import { CheckpointRepository } from './checkpoint.repository.js';
import { CheckpointSession } from './checkpoint.session.js';
import type { CheckpointPage } from './page-cursor.js';
import { CheckpointControls } from './control/checkpoint-control.js';
import { CheckpointLeases } from './leases/checkpoint-leases.js';
import { CheckpointOrphans, type OrphanedJob } from './ownership/checkpoint-orphans.js';
import { CheckpointOwnership, type ClaimedCheckpoint } from './ownership/checkpoint-ownership.js';
import { ChunkCompletions, type ChunkCompletionListener } from './ownership/chunk-completions.js';
import { CheckpointAnnouncements } from './progress/checkpoint-announcements.js';
import { CheckpointInspection } from './progress/checkpoint-inspection.js';
import { CheckpointWatch } from './progress/checkpoint-watch.js';
import { CheckpointRecords } from './records/checkpoint-records.js';
import { CheckpointSessionHealth } from './session/session-health.js';

export type { ChunkCompletionListener } from './ownership/chunk-completions.js';
export type { OrphanedJob } from './ownership/checkpoint-orphans.js';
export type { ClaimedCheckpoint } from './ownership/checkpoint-ownership.js';

/**
 * Checkpoints of long-running work, one narrow row per key, on the application's own DataSource.
 *
 * The five methods of the service this library grew from keep their names and meaning; every
 * write is one SQL statement, and a database failure throws `CheckpointStoreError` instead of
 * returning null. The ownership calls (`claim`, `advance`, `complete`, `fail`, `release`) are what
 * `@Checkpointed()` uses; they are public for work that cannot use the decorator.
 *
 * The service is a façade: each job lives in a room of its own (ownership/, leases/, control/,
 * progress/, records/, session/) and the methods here hand over to it.
 */
@Injectable()
export class CheckpointService {
  /** @internal Where the core reports attempts and batches (the telemetry room listens). */
  readonly observers = new CheckpointObservers();
  private readonly leases: CheckpointLeases;
  private readonly announcements: CheckpointAnnouncements;
  private readonly controls: CheckpointControls;
  private readonly chunkCompletions = new ChunkCompletions();
  private readonly ownership: CheckpointOwnership;
  private readonly orphans: CheckpointOrphans;
  private readonly progress: CheckpointWatch;
  private readonly health: CheckpointSessionHealth;
  private readonly inspection: CheckpointInspection;
  private readonly records: CheckpointRecords;

  constructor(
    @Inject(CHECKPOINT_OPTIONS) options: ResolvedCheckpointOptions,
    repository: CheckpointRepository,
    private readonly session: CheckpointSession,
  ) {
    this.leases = new CheckpointLeases(options, session);
    this.announcements = new CheckpointAnnouncements(session);
    this.controls = new CheckpointControls(options, repository, session, this.leases);
    this.ownership = new CheckpointOwnership(
      options,
      repository,
      session,
      this.leases,
      this.controls,
      this.announcements,
      this.chunkCompletions,
      this.observers,
    );
    this.orphans = new CheckpointOrphans(repository, session, this.observers);
    this.progress = new CheckpointWatch(repository, session);
    this.health = new CheckpointSessionHealth(repository, session);
    this.inspection = new CheckpointInspection(repository);
    this.records = new CheckpointRecords(options, repository, session);
  }

  /** Fired when the application shuts down: in-flight work stops at its next batch boundary. */
  get shutdownSignal(): AbortSignal {
    return this.leases.shutdownSignal;
  }

  // --- the five methods of the service this grew from -----------------------------------------

  /**
   * Stores the checkpoint of `key`, replacing the previous one. One statement. With a `manager`
   * it runs inside the caller's transaction: the work's writes and the checkpoint commit together.
   */
  async saveCheckpoint(
    key: string,
    checkpoint: CheckpointData,
    options: WriteOptions = {},
  ): Promise<void> {
    return this.records.save(key, checkpoint, options);
  }

  /** The checkpoint of `key`, or null when there is none. A failed read throws. */
  async loadCheckpoint(key: string): Promise<CheckpointData | null> {
    return this.records.load(key);
  }

  /** Deletes the checkpoint of `key`. An attempt still running on it is fenced at its next write. */
  async clearCheckpoint(key: string): Promise<void> {
    return this.records.clear(key);
  }

  /** Progress of `key`: the original four fields and rate, ETA and state; null when none. */
  async getProgress(key: string): Promise<CheckpointProgress | null> {
    return this.progress.getProgress(key);
  }

  /** True when a checkpoint exists and fewer batches are processed than there are in total. */
  async canResume(key: string): Promise<boolean> {
    const checkpoint = await this.loadCheckpoint(key);
    return checkpoint !== null && checkpoint.processedBatches < checkpoint.totalBatches;
  }

  // --- ownership (ownership/, leases/) --------------------------------------------------------

  /**
   * Takes ownership of `key` for one attempt and returns where to resume. Throws
   * `CheckpointLeaseConflictError` at once while another attempt that is still alive owns it
   * (unless this claim is a newer pg-boss dispatch of the same job). Every claim bumps the epoch,
   * which fences whatever attempt owned the key before.
   */
  async claim(key: string, options: ClaimOptions = {}): Promise<ClaimedCheckpoint> {
    return this.ownership.claim(key, options);
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
    return this.ownership.reclaim(key, options, previousEpoch);
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
    return this.ownership.advance(key, epoch, progress, options);
  }

  /**
   * The advance of a batch in the library's own transaction, sent with its COMMIT (one round
   * trip); fenced, the batch rolls back and it throws `CheckpointFencedError`. With
   * `beginNext` it may begin the next batch's transaction on `runner` too: it says if it did.
   * @internal used by the batch loop
   */
  async advanceAndCommit(
    key: string,
    epoch: number,
    progress: AdvanceProgress,
    runner: QueryRunner,
    beginNext = false,
  ): Promise<boolean> {
    return this.ownership.advanceAndCommit(key, epoch, progress, runner, beginNext);
  }

  /** Marks `key` completed with the work's return value and ends the attempt's ownership. */
  async complete(
    key: string,
    epoch: number,
    result?: unknown,
    options: WriteOptions = {},
  ): Promise<void> {
    return this.ownership.complete(key, epoch, result, options);
  }

  /** Marks `key` failed with the error; progress is kept for the next attempt. Ends ownership. */
  async fail(key: string, epoch: number, error: unknown): Promise<void> {
    return this.ownership.fail(key, epoch, error);
  }

  /**
   * Hands `key` back without failing it (a graceful stop at a batch boundary), so the next attempt
   * resumes at once. Quietly does nothing to the row when the attempt was already superseded.
   */
  async release(key: string, epoch: number): Promise<void> {
    return this.ownership.release(key, epoch);
  }

  /** Starts `key` over from item 0 under a new fingerprint; the attempt keeps its ownership. */
  async restart(key: string, epoch: number, fingerprint?: string): Promise<void> {
    return this.ownership.restart(key, epoch, fingerprint);
  }

  /** Keeps the progress of `key` but records a new input fingerprint. */
  async setFingerprint(key: string, epoch: number, fingerprint: string): Promise<void> {
    return this.ownership.setFingerprint(key, epoch, fingerprint);
  }

  // --- operators' control (control/) ----------------------------------------------------------

  /**
   * Asks `key` to pause, from any process: a running attempt stops at its next batch boundary
   * (it hears the request within about a second) and the key becomes `paused`, progress kept; a
   * key nobody runs is paused at once. A paused key is not run again until `resume`; a paused
   * pg-boss job leaves the queue without spending a retry. False when the key does not exist or is
   * completed or cancelled.
   */
  async pause(key: string): Promise<boolean> {
    return this.controls.control(key, 'pause');
  }

  /**
   * Withdraws a pause: the key can be claimed again (a paused pg-boss job goes back to the queue,
   * through any process that works its queue). False when the key was not paused.
   */
  async resume(key: string): Promise<boolean> {
    return this.controls.control(key, 'resume');
  }

  /**
   * Cancels `key`, from any process: a running attempt stops at its next batch boundary and the
   * key becomes `cancelled`; committed work stays, and it never runs again. False when the key does
   * not exist or is already completed or cancelled.
   */
  async cancel(key: string): Promise<boolean> {
    return this.controls.control(key, 'cancel');
  }

  /** `pause`, `resume` or `cancel` of `key`, as `action` names it; false when it was not taken. */
  async control(key: string, action: ControlAction): Promise<boolean> {
    return this.controls.control(key, action);
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
    return this.controls.controlRun(runId, action, options);
  }

  /**
   * Moves the resume point of `key` back to item `toIndex` (0 starts over), only while its epoch
   * is still `expectedEpoch` (read it with `find`), so an operator never races a worker: when the
   * key ran or changed meanwhile it throws `CheckpointEpochMovedError` and changes nothing. The
   * key must have no live attempt (pause it first). For page-by-page sources give the `cursor` to
   * resume after. Returns the key's new epoch.
   */
  async rewind(key: string, toIndex: number, options: RewindOptions): Promise<number> {
    return this.controls.rewind(key, toIndex, options);
  }

  /**
   * Calls `listener` with each operator request (`pause`, `resume`, `cancel` and the key) made in
   * any process. For the library's own rooms (the pg-boss integration moves jobs with it).
   */
  async onControl(listener: (action: ControlAction, key: string) => void): Promise<() => void> {
    return this.controls.onControl(listener);
  }

  // --- inspection and housekeeping ------------------------------------------------------------

  /** The whole row of `key`, or null. */
  async find(key: string): Promise<CheckpointRecord | null> {
    return this.inspection.find(key);
  }

  /**
   * A page of checkpoints, newest first (by creation, then key), optionally in one state. Pass
   * the page's `after` for the next one while `more` is true; every page costs the same.
   */
  async list(options: ListOptions = {}): Promise<CheckpointPage<CheckpointRecord>> {
    return this.inspection.list(options);
  }

  /**
   * Deletes checkpoints in a state (default: completed) not updated since `olderThan`, in short
   * slices that skip keys an attempt holds; returns how many keys went.
   */
  async purge(options: PurgeOptions): Promise<number> {
    return this.inspection.purge(options);
  }

  // --- progress (progress/) -------------------------------------------------------------------

  /**
   * Progress of `key` as it changes, in any process (LISTEN/NOTIFY): the current value first,
   * then one value per change (changes closer together than ~100 ms are coalesced). Reads once
   * more a moment after the last change (so that no final state is missed), and completes with
   * the final state when the key completes or is cancelled. A database failure ends it with a
   * CheckpointStoreError.
   */
  watch(key: string): Observable<CheckpointProgress> {
    return this.progress.watch(key);
  }

  /**
   * Keys that changed in any process (LISTEN/NOTIFY; changes closer together than ~100 ms are
   * coalesced), for live views over many keys such as a dashboard's. Listening starts with the
   * subscription and takes a round trip: `listening` is called once every change committed from
   * then on will be heard, so a view read after it misses nothing.
   */
  changes(listening?: () => void): Observable<string> {
    return this.progress.changes(listening);
  }

  /**
   * Sends the announcements of writes made in `runner`'s transaction, once it committed (a
   * watcher reading before the commit would see the old state and never look again).
   * @internal used by the batch loop and the runner
   */
  deferAnnouncements(runner: QueryRunner): () => void {
    return this.announcements.defer(runner);
  }

  // --- the reaper's look-ups (ownership/) -----------------------------------------------------

  /**
   * Running pg-boss keys (of any queue) whose owner is dead: its lease expired or its lease
   * session is gone; undefined when another process's reaper leads (one looks at a time). The
   * reaper confirms a vanished session a grace period later (a live owner reconnecting
   * re-asserts its lease meanwhile) before it calls `abandon`.
   * @internal used by the reaper, named `reaper` (unique per reaper)
   */
  async findOrphans(reaper: string): Promise<OrphanedJob[] | undefined> {
    return this.orphans.findOrphans(reaper);
  }

  /**
   * Marks a dead owner's attempt failed, unless it came back or a new attempt took the key
   * meanwhile (decided in the one statement). True when it was marked: the caller hands the job
   * back to pg-boss.
   * @internal used by the reaper
   */
  async abandon(orphan: OrphanedJob): Promise<boolean> {
    return this.orphans.abandon(orphan);
  }

  /**
   * Tells every process that a job of `queue` went back to pg-boss, so that an idle worker of
   * the queue fetches it at once.
   * @internal used by the reaper
   */
  async announceHandBack(queue: string): Promise<void> {
    return this.orphans.announceHandBack(queue);
  }

  /**
   * Calls `listener` with the queue of each job handed back by any process's reaper.
   * @internal used by the reaper
   */
  async onHandBack(listener: (queue: string) => void): Promise<() => void> {
    return this.orphans.onHandBack(listener);
  }

  // --- session health (session/) --------------------------------------------------------------

  /**
   * Resolves once the database answers again (a statement on a pooled connection and the lease
   * session both work), retrying with a short backoff; throws CheckpointStoreError after
   * `withinMs`, or at once when the application shuts down.
   * @internal used by the runner to resume in place
   */
  async waitForDatabase(withinMs: number, signal?: AbortSignal): Promise<void> {
    return this.health.waitForDatabase(withinMs, signal);
  }

  /**
   * Why this process's checkpoint session was lost, while it is (no round trip).
   * @internal used by the health indicator
   */
  get sessionLost(): string | undefined {
    return this.health.sessionLost;
  }

  /**
   * Whether this process's checkpoint session works: null when it does, else why it was lost.
   * A lost session is tried once more (one round trip), so that the answer recovers with it.
   */
  async sessionProblem(): Promise<string | null> {
    return this.health.sessionProblem();
  }

  // --- lifecycle (called by the module) -------------------------------------------------------

  /** Fires the shutdown signal: every attempt of this process stops at its next batch boundary. */
  stopAttempts(): void {
    this.leases.stopAttempts();
  }

  /** Returns the dedicated session to the pool; leases still held end with it. */
  async close(): Promise<void> {
    this.leases.stop();
    await this.session.close();
  }

  /**
   * Subscribes to the completion of keys that are chunks of a run; returns the unsubscribe.
   * @internal used by CheckpointRuns
   */
  onChunkCompleted(listener: ChunkCompletionListener): () => void {
    return this.chunkCompletions.on(listener);
  }
}
