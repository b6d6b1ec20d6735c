// Terminology:
// - run: one input (a list of items) worked as a unit, under an id the caller chooses.
// - chunk: a slice of the run's items; one pg-boss job and one checkpoint row each. The chunk
//   handler is an ordinary `@Checkpointed({ queue })` method.
// - direct run: a run of at most `directThreshold` items, worked inline in the caller as one chunk.
import type { ChunkPlan } from './runs.plan.js';
import type { RunState } from '../checkpoint.constants.js';

/** Options of `CheckpointRuns.start()`. */
export interface StartRunOptions<T = unknown, D = unknown> {
  /** The run's id (1 to 200 characters). Starting an id that exists returns that run. */
  id: string;
  /** The run's items; each chunk job carries its own slice. JSON-serialisable. */
  items: readonly T[];
  /** Items per chunk, or `'auto'` (the default): see `CheckpointRuns.plan()`. */
  chunkSize?: number | 'auto';
  /** Runs of at most this many items run inline in the caller (default: the module's `directThreshold`, 50). */
  directThreshold?: number;
  /** With `chunkSize: 'auto'`: how long one chunk should take (default 60 000 ms). */
  targetChunkMs?: number;
  /** Stored with the run, returned by `get()`. */
  metadata?: Record<string, unknown>;
  /** Given to every chunk as `job.data.data` (settings the handler needs, say). JSON. */
  data?: D;
}

/** Options of `CheckpointRuns.plan()`. */
export interface PlanRunOptions {
  /** How long one chunk should take (default 60 000 ms). */
  targetChunkMs?: number;
  /** Smallest chunk (default 1). */
  minChunkSize?: number;
  /** Largest chunk (default 50 000): a chunk's items travel in its job's data. */
  maxChunkSize?: number;
}

/** What a chunk job carries in `job.data`. */
export interface RunChunkData<T = unknown, D = unknown> {
  /** This chunk's slice of the run's items. */
  items: T[];
  /** `data` as given to `start()`, the same for every chunk. */
  data?: D;
  run: {
    /** The run's id. */
    id: string;
    /** This chunk's index, from 0. */
    chunk: number;
    /** How many chunks the run has. */
    chunks: number;
    /** Index of this chunk's first item in the run's items. */
    offset: number;
  };
}

/** A run and its progress, summed over its chunks. */
export interface Run {
  id: string;
  queue: string;
  state: RunState;
  /** `direct`: worked inline by the caller of `start()`; `queued`: one pg-boss job per chunk. */
  mode: 'queued' | 'direct';
  totalItems: number;
  processedItems: number;
  /** Items of its chunks in the failed-item ledger (counted in processedItems). */
  skippedItems: number;
  /** Whole-number percentage of items processed. */
  percentage: number;
  chunkSize: number;
  chunkCount: number;
  chunks: {
    completed: number;
    running: number;
    failed: number;
    pending: number;
    cancelled: number;
    /** Chunks that were claimed at least once. */
    started: number;
  };
  /** Items per second since the run was created, or null before the first item. */
  itemsPerSecond: number | null;
  /** Seconds left at that rate (0 when completed), or null while unknown. */
  etaSeconds: number | null;
  /** Milliseconds per item measured when the run completed (the planner reads it). */
  itemMs: number | null;
  metadata: Record<string, unknown> | null;
  createdAt: Date;
  /** When a chunk or the run last changed. */
  lastUpdate: Date;
  completedAt: Date | null;
  /** When the completion hook (`@OnRunCompleted()`) committed, or null. */
  completedHookAt: Date | null;
}

/** What `start()` returns: the run, whether this call created it, and a direct run's result. */
export interface StartedRun extends Run {
  /** False when the id existed: nothing was sent. */
  created: boolean;
  /** A direct run's return value (of its one chunk). */
  result?: unknown;
}

/** One chunk of a run. */
export interface RunChunk {
  index: number;
  /** Its checkpoint key (`<queue>:<jobId>`). */
  key: string;
  jobId: string;
  state: string;
  processedItems: number;
  totalItems: number | null;
  attempt: number;
  /** Pickups of its job that followed a hand-back (no retry spent): see CheckpointRecord. */
  handBacks: number;
  /** The chunk handler's return value, once completed. */
  result: unknown;
  error: unknown;
}

/** Filter of `list()`. */
export interface ListRunsOptions {
  queue?: string;
  state?: RunState;
  /** At most this many (default 100), newest first. */
  limit?: number;
  /** The `after` token of the previous page: this page starts after its last run. */
  after?: string;
}

/** The recommendation of `plan()`. */
export interface RunPlan extends ChunkPlan {
  queue: string;
  /** How many earlier completed runs the per-item time was averaged over (0: none). */
  measuredRuns: number;
}
