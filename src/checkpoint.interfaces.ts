/**
 * Terminology
 *
 * - key:        names one unit of resumable work (for a pg-boss job: the queue name and job id).
 *               One narrow row per key in the `checkpoint` table.
 * - item:       one element of the work's input; progress is counted in items.
 * - batch:      consecutive items whose effects commit together with one checkpoint advance.
 * - attempt:    one run of the work on a key, from claim to complete, fail or release (or crash).
 * - owner:      a label naming the attempt's process, stored on the row for humans.
 * - lease:      an attempt's ownership of a key. The row names the owner's lease session (the
 *               backend pid and start time of its process's dedicated connection) and a lease
 *               expiry the process renews every leaseTtlMs / 3. The owner is dead when that
 *               session is gone from pg_stat_activity (a crash: the key is free at once) or the
 *               lease expired (a frozen or cut-off process: free after at most leaseTtlMs).
 * - epoch:      a counter bumped by every claim. Every write names the epoch it was claimed with
 *               and changes nothing when the row has moved on: a stale attempt is fenced.
 * - fingerprint: a short digest of the input, stored at the first claim; a later attempt with a
 *               different one follows `onInputChange`.
 * - dispatch:   for queue work, pg-boss's retry count of the job; a newer dispatch of the same job
 *               supersedes an older one that still runs (pg-boss re-dispatches expired jobs).
 */
import type { EntityManager } from 'typeorm';
import type { CheckpointControl, CheckpointState } from './checkpoint.constants.js';

/**
 * The checkpoint as the original service stored it; every field keeps its name and meaning.
 */
export interface CheckpointData {
  /** Index of the batch the work is at. */
  currentBatchIndex: number;
  /** Position in the whole item list to resume from: every item before it is done. */
  currentIndex: number;
  /** Number of batches done. */
  processedBatches: number;
  /** Number of batches in the whole work. */
  totalBatches: number;
  /** Any JSON value the work wants back on resume (running totals, say). */
  intermediateResult?: unknown;
  /** Any JSON object of extra information. */
  metadata?: Record<string, unknown>;
  /** When the checkpoint was last written (set by the database; ignored on save). */
  lastUpdate?: Date;
}

/** Progress of a key: the original service's four fields, and what a progress bar needs. */
export interface CheckpointProgress {
  key: string;
  /** Index of the batch the work is at (the original `currentBatch`). */
  currentBatch: number;
  totalBatches: number;
  processedBatches: number;
  /** Whole-number percentage of batches done (0 when totalBatches is 0), as before. */
  percentage: number;
  /** Items done: every item before this position is committed. */
  processedItems: number;
  /** Items in the whole work, when known. */
  totalItems: number | null;
  state: CheckpointState;
  /** How many attempts claimed this key (1 for the first run). */
  attempt: number;
  /** Items per second of the current attempt, or null before it committed anything. */
  itemsPerSecond: number | null;
  /** Estimated seconds to completion at the current attempt's rate, or null when unknown. */
  etaSeconds: number | null;
  /** Items in the failed-item ledger (counted in `processedItems`: the work went past them). */
  skippedItems: number;
  lastUpdate: Date;
}

/** A whole checkpoint row, as `list()` returns it. */
export interface CheckpointRecord extends Required<
  Omit<CheckpointData, 'intermediateResult' | 'metadata'>
> {
  key: string;
  state: CheckpointState;
  epoch: number;
  owner: string | null;
  attempt: number;
  fingerprint: string | null;
  totalItems: number | null;
  cursor: unknown;
  intermediateResult: unknown;
  metadata: Record<string, unknown> | null;
  result: unknown;
  error: unknown;
  /** Items in the failed-item ledger. */
  skippedItems: number;
  /** When a redrive of the ledger was asked for and has not run yet, else null. */
  redriveRequestedAt: Date | null;
  /**
   * Pickups of the key's pg-boss job that followed a hand-back spending no retry (a graceful
   * shutdown, a pause and resume). pg-boss's `retry_count` counts them too: the retries really
   * spent are `retry_count - handBacks`.
   */
  handBacks: number;
  createdAt: Date;
  /** An operator's pending request (`pause` or `cancel`), or null. */
  control: CheckpointControl | null;
  /** The run the key is a chunk of, or null. */
  runId: string | null;
  /** For pg-boss work: the queue and the job id of the last attempt, or null. */
  queue: string | null;
  jobId: string | null;
  /** The chunk's index in its run (see `CheckpointRuns`), or null. */
  runChunk: number | null;
}

/** Which run a key belongs to, and which of its chunks it is. */
export interface CheckpointRunChunk {
  /** The run's id, as given to `CheckpointRuns.start()`. */
  id: string;
  /** The chunk's index in the run, from 0. */
  chunk: number;
}

/** Options of `CheckpointService.claim()`. */
export interface ClaimOptions {
  /** A label for the owner, shown in `list()`; defaults to host, pid and a counter. */
  owner?: string;
  /** Stored on the first claim; later claims return the stored one for comparison. */
  fingerprint?: string;
  /** The number of items in the work, when known up front. */
  totalItems?: number;
  /**
   * The pg-boss dispatch number (the job's retry count). When the lease is held by a live attempt
   * with a lower dispatch, this claim supersedes it instead of failing: the epoch moves on and the
   * old attempt is fenced at its next write.
   */
  dispatch?: number;
  /** For pg-boss work: the queue and job id, so that a dead worker's job can be handed back. */
  queue?: string;
  jobId?: string;
}

/** What a claim returns: where to resume, and the epoch that every later write must carry. */
export interface Claim {
  key: string;
  epoch: number;
  attempt: number;
  /** `running`, or `completed` when the work on this key is already done (see `result`). */
  state: CheckpointState;
  /** Item index to resume from (0 for a new key). */
  resumeFrom: number;
  /** The last stored cursor (for page-by-page sources), or null. */
  cursor: unknown;
  currentBatchIndex: number;
  processedBatches: number;
  totalBatches: number;
  totalItems: number | null;
  /** The fingerprint stored for the key (null when none was ever given). */
  fingerprint: string | null;
  intermediateResult: unknown;
  metadata: Record<string, unknown> | null;
  /** The stored return value, when the key is completed. */
  result: unknown;
  /** Items in the failed-item ledger. */
  skippedItems: number;
  /** The attempt first runs the ledger's items again (a redrive was asked for). */
  redrive: boolean;
  /** The run this key is a chunk of, or null. */
  run: CheckpointRunChunk | null;
}

/** One checkpoint advance: absolute values after the batch just done. */
export interface AdvanceProgress {
  /** Position to resume from after this batch: every item before it is done. */
  currentIndex: number;
  currentBatchIndex?: number;
  processedBatches?: number;
  totalBatches?: number;
  totalItems?: number;
  /** For page-by-page sources: the last key seen. */
  cursor?: unknown;
  intermediateResult?: unknown;
  metadata?: Record<string, unknown>;
}

/** Options of writes that may run inside the caller's transaction. */
export interface WriteOptions {
  /** An EntityManager of a running transaction: the write commits or rolls back with it. */
  manager?: EntityManager;
}

/** Filter of `list()`. */
export interface ListOptions {
  state?: CheckpointState;
  /** At most this many rows (default 100), newest first. */
  limit?: number;
  /** The `after` token of the previous page: this page starts after its last row. */
  after?: string;
}

/** Filter of `purge()`: rows in this state (default: completed) not updated for this long. */
export interface PurgeOptions {
  olderThan: Date | { days?: number; hours?: number; minutes?: number; seconds?: number };
  state?: CheckpointState;
}

/** An operator's request: `pause` and `cancel` stop a running attempt at a batch boundary. */
export type ControlAction = 'pause' | 'resume' | 'cancel';

/** Options of `CheckpointService.rewind()`. */
export interface RewindOptions {
  /** The epoch the operator read (`find(key).epoch`); the rewind is refused when it moved. */
  expectedEpoch: number;
  /** For page-by-page sources: the cursor to resume after (kept when not given, cleared at 0). */
  cursor?: unknown;
}
