import type { CheckpointPage } from '../page-cursor.js';
import { CHECKPOINT_STATES, RUN_STATES, type RunState } from '../checkpoint.constants.js';
import type { CheckpointRow } from '../checkpoint.repository.js';
import { toProgress } from '../progress/checkpoint-reads.js';
import type { Run } from '../runs/runs.interfaces.js';

/** One key as the HTTP API and the dashboard show it. */
export interface KeyView {
  key: string;
  state: string;
  /** An operator's pending request (`pause` or `cancel`), or null. */
  control: string | null;
  runId: string | null;
  queue: string | null;
  jobId: string | null;
  attempt: number;
  /** Pickups of its job that followed a hand-back (no retry spent): see CheckpointRecord. */
  handBacks: number;
  /** Give it back as `expectedEpoch` to rewind. */
  epoch: number;
  owner: string | null;
  processedItems: number;
  totalItems: number | null;
  /** Share of items done (0-100, one decimal), or of batches when the item count is unknown. */
  percentage: number;
  processedBatches: number;
  totalBatches: number;
  skippedItems: number;
  itemsPerSecond: number | null;
  etaSeconds: number | null;
  /** The last attempt's error, when it failed. */
  error: { name: string; message: string } | null;
  lastUpdate: string;
  createdAt: string;
}

/**
 * One run: the library's Run (its state, items and times, as CheckpointRuns reads them) with what
 * the page adds from its chunks.
 */
export interface RunView {
  id: string;
  queue: string;
  /** The run's state as CheckpointRuns defines it: created, running, completed, failed, cancelled. */
  state: RunState;
  /** `pause` while a chunk of it is paused (Resume is then what the page offers), else null. */
  control: 'pause' | null;
  chunks: number;
  /** How many chunks are in each state. */
  counts: Record<string, number>;
  processedItems: number;
  totalItems: number;
  percentage: number;
  skippedItems: number;
  /** Items per second of its running chunks together, or null when none runs. */
  itemsPerSecond: number | null;
  etaSeconds: number | null;
  attempt: number;
  createdAt: string;
  lastUpdate: string;
}

/** A run's items per second over its life, in equal slices (see `GET runs/:id/throughput`). */
export interface ThroughputView {
  /** Start of the first slice and end of the last (null: no item processed yet). */
  from: string | null;
  to: string | null;
  /** Items per second in each slice, oldest first. */
  points: Array<{ at: string; itemsPerSecond: number }>;
}

/** Keys per state; a count above `cap` means "more than cap" (counting stops there). */
export interface StateCounts {
  counts: Record<string, number>;
  cap: number;
}

/** A page of a list: pass `after` back for the next page while `more` is true. */
export type Page<T> = CheckpointPage<T>;

/** What `chunkCounts` returns per run. */
export interface ChunkCounts {
  run_id: string;
  pending: number;
  running: number;
  paused: number;
  completed: number;
  failed: number;
  cancelled: number;
  released: number;
  attempt: number;
  items_per_second: number;
}

export function toKeyView(row: CheckpointRow): KeyView {
  const progress = toProgress(row);
  const percentage =
    progress.totalItems !== null && progress.totalItems > 0
      ? Math.min(100, Math.round((progress.processedItems / progress.totalItems) * 1000) / 10)
      : row.state === CHECKPOINT_STATES.completed
        ? 100
        : progress.percentage;
  return {
    key: row.key,
    state: row.state,
    // A request is pending until the key reaches the state it asks for: a cancelled key whose
    // worker stopped reads `cancelled`, not "cancel requested" (the row keeps `control`, which
    // keeps claims away from it).
    control:
      (row.control === 'cancel' && row.state === CHECKPOINT_STATES.cancelled) ||
      (row.control === 'pause' && row.state === CHECKPOINT_STATES.paused)
        ? null
        : row.control,
    runId: row.run_id,
    queue: row.queue,
    jobId: row.job_id,
    attempt: row.attempt,
    handBacks: row.hand_backs ?? 0,
    epoch: Number(row.epoch),
    owner: row.owner,
    processedItems: progress.processedItems,
    totalItems: progress.totalItems,
    percentage,
    processedBatches: progress.processedBatches,
    totalBatches: progress.totalBatches,
    skippedItems: Number(row.skipped_items ?? 0),
    itemsPerSecond: progress.itemsPerSecond,
    etaSeconds: progress.etaSeconds,
    error: describeError(row.error),
    lastUpdate: row.updated_at.toISOString(),
    createdAt: row.created_at.toISOString(),
  };
}

export function toRunView(run: Run, chunks: ChunkCounts | undefined): RunView {
  const counts = {
    pending: chunks?.pending ?? 0,
    running: chunks?.running ?? 0,
    paused: chunks?.paused ?? 0,
    released: chunks?.released ?? 0,
    completed: chunks?.completed ?? 0,
    failed: chunks?.failed ?? 0,
    cancelled: chunks?.cancelled ?? 0,
  };
  const rate = chunks !== undefined && chunks.items_per_second > 0 ? chunks.items_per_second : null;
  return {
    id: run.id,
    queue: run.queue,
    state: run.state,
    control: counts.paused > 0 ? 'pause' : null,
    chunks: run.chunkCount,
    counts,
    processedItems: run.processedItems,
    totalItems: run.totalItems,
    percentage: run.percentage,
    skippedItems: run.skippedItems,
    itemsPerSecond: rate,
    etaSeconds:
      run.state === RUN_STATES.completed
        ? 0
        : rate === null
          ? null
          : Math.max(0, run.totalItems - run.processedItems) / rate,
    attempt: chunks?.attempt ?? 0,
    createdAt: run.createdAt.toISOString(),
    lastUpdate: run.lastUpdate.toISOString(),
  };
}

function describeError(error: unknown): { name: string; message: string } | null {
  if (error === null || error === undefined) return null;
  if (typeof error === 'object') {
    const { name, message } = error as { name?: unknown; message?: unknown };
    return { name: text(name, 'Error'), message: text(message, '') };
  }
  return { name: 'Error', message: text(error, '') };
}

/** Any JSON value as text: strings as they are, anything else as JSON. */
function text(value: unknown, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  return typeof value === 'string' ? value : JSON.stringify(value);
}
