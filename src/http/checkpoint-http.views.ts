import type { CheckpointPage } from '../page-cursor.js';
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { CheckpointRow } from '../checkpoint.repository.js';
import { toProgress } from '../progress/checkpoint-reads.js';

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

/** One run: its chunks (the keys with its run_id) summed. */
export interface RunView {
  id: string;
  state: string;
  chunks: number;
  /** How many chunks are in each state. */
  counts: Record<string, number>;
  processedItems: number;
  totalItems: number | null;
  percentage: number;
  skippedItems: number;
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

/** What the SQL returns per run (counts as strings where they are bigint). */
export interface RunRow {
  run_id: string;
  chunks: number;
  processed_items: string;
  total_items: string | null;
  skipped_items: string;
  pending: number;
  running: number;
  paused: number;
  completed: number;
  failed: number;
  cancelled: number;
  released: number;
  attempt: number;
  items_per_second: number;
  created_at: Date;
  updated_at: Date;
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

export function toRunView(row: RunRow): RunView {
  const processedItems = Number(row.processed_items);
  const totalItems = row.total_items === null ? null : Number(row.total_items);
  const rate = row.items_per_second > 0 ? row.items_per_second : null;
  const counts = {
    pending: row.pending,
    running: row.running,
    paused: row.paused,
    released: row.released,
    completed: row.completed,
    failed: row.failed,
    cancelled: row.cancelled,
  };
  return {
    id: row.run_id,
    state: runState(counts, row.chunks),
    chunks: row.chunks,
    counts,
    processedItems,
    totalItems,
    percentage:
      totalItems !== null && totalItems > 0
        ? Math.min(100, Math.round((processedItems / totalItems) * 1000) / 10)
        : row.completed === row.chunks
          ? 100
          : 0,
    skippedItems: Number(row.skipped_items),
    itemsPerSecond: rate,
    etaSeconds:
      row.completed === row.chunks
        ? 0
        : totalItems !== null && rate !== null
          ? Math.max(0, totalItems - processedItems) / rate
          : null,
    attempt: row.attempt,
    createdAt: row.created_at.toISOString(),
    lastUpdate: row.updated_at.toISOString(),
  };
}

/** A run's state from its chunks': the most pressing one wins. */
function runState(counts: Record<string, number>, chunks: number): string {
  if (counts.completed === chunks) return 'completed';
  if ((counts.running ?? 0) > 0) return 'running';
  if ((counts.failed ?? 0) > 0) return 'failed';
  if ((counts.paused ?? 0) > 0) return 'paused';
  if ((counts.cancelled ?? 0) > 0) return 'cancelled';
  if ((counts.released ?? 0) > 0) return 'released';
  return 'pending';
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
