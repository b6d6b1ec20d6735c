/** The states of a run. */
export const RUN_STATES = Object.freeze({
  /** Started: its chunk jobs are queued, none has been claimed yet. */
  created: 'created',
  /** At least one chunk has started. (Derived when read: the run row is not written per chunk.) */
  running: 'running',
  /** Every chunk completed; the completion hook runs once. */
  completed: 'completed',
  /** A direct run whose inline attempt threw, or a queued run with a failed chunk and nothing else left to run. */
  failed: 'failed',
  /** Cancelled: its chunks stopped at their next batch boundary and will not run again. */
  cancelled: 'cancelled',
} as const);

export type RunState = (typeof RUN_STATES)[keyof typeof RUN_STATES];

/** Metadata key written by `@OnRunCompleted()`. */
export const ON_RUN_COMPLETED_METADATA = 'checkpoint:on-run-completed';

/** Longest run id: chunk keys (`<queue>:<uuid>`) stay far below the key limit. */
export const MAX_RUN_ID_LENGTH = 200;
/** How often each process renews its worker rows, and how long a silent one still counts. */
export const WORKER_BEAT_MS = 2_000;
export const WORKER_ALIVE_SECONDS = 6;
/** How often each process looks for runs to complete and completion hooks to run. */
export const SWEEP_INTERVAL_MS = 1_000;
/** How often a watcher reads the run even without a notification (a missed NOTIFY costs this). */
export const WATCH_POLL_MS = 2_000;
/** A run's own changes are announced on the checkpoint channel as `run:<id>`. */
export const RUN_NOTIFY_PREFIX = 'run:';
