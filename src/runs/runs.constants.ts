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
