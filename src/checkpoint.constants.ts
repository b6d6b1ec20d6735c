/** Metadata key written by `@Checkpointed()`. */
export const CHECKPOINTED_METADATA = 'checkpoint:checkpointed';
/** Metadata key written by `@CheckpointCtx()`: the index of the context parameter. */
export const CHECKPOINT_CTX_METADATA = 'checkpoint:ctx-parameter';

/** Injection token of the validated module options. */
export const CHECKPOINT_OPTIONS = Symbol('checkpoint:options');
/** Injection token of the TypeORM DataSource the library uses (the host's, never its own). */
export const CHECKPOINT_DATA_SOURCE = Symbol('checkpoint:data-source');
/**
 * Injection token of the PgBoss instance the library works with (its own, started from the
 * `boss` option, or the application's, given as an instance or through `bossToken`). A token of
 * the library's own, so that it never clashes with an application or a wrapper that provides the
 * `PgBoss` class itself. Exported only when the module has an instance (see `@InjectCheckpointBoss()`).
 */
export const CHECKPOINT_BOSS = Symbol('checkpoint:boss');

export const DEFAULT_SCHEMA = 'checkpoint';
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;
export const DEFAULT_DIRECT_THRESHOLD = 50;
export const MAX_KEY_LENGTH = 512;
export const DEFAULT_LEASE_TTL_MS = 30_000;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 60_000;
export const DEFAULT_STALL_WARN_MS = 5_000;
export const DEFAULT_DATABASE_OUTAGE_MS = 60_000;

/** Schema names: lower-case identifiers, short enough to leave room for PostgreSQL's 63-byte limit. */
export const IDENTIFIER_PATTERN = /^[a-z_][a-z0-9_]{0,47}$/;

/**
 * The states of a checkpoint row. A frozen map rather than loose strings, so that every
 * comparison in the code names one of these.
 */
export const CHECKPOINT_STATES = Object.freeze({
  /** A chunk of a run whose job has not started yet. */
  pending: 'pending',
  /** An attempt owns the key, or owned it until its process died. */
  running: 'running',
  /** The last attempt stopped cleanly at a batch boundary (shutdown) and handed the key back. */
  released: 'released',
  /** An operator paused the work; it stopped at a batch boundary and waits for `resume`. */
  paused: 'paused',
  /** The work finished; `result` holds the method's return value. */
  completed: 'completed',
  /** The last attempt threw; progress is kept for the next attempt. */
  failed: 'failed',
  /** An operator cancelled the work; it stopped at a batch boundary and will not run again. */
  cancelled: 'cancelled',
} as const);

/** Requests an operator leaves on a key; the running attempt obeys at its next batch boundary. */
export const CHECKPOINT_CONTROLS = Object.freeze({
  pause: 'pause',
  cancel: 'cancel',
} as const);

/** An operator's request to a key: `pause` or `cancel` (see CheckpointService.control). */
export type CheckpointControl = (typeof CHECKPOINT_CONTROLS)[keyof typeof CHECKPOINT_CONTROLS];

/** The state of a key's row: one of CHECKPOINT_STATES. */
export type CheckpointState = (typeof CHECKPOINT_STATES)[keyof typeof CHECKPOINT_STATES];

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

/** A run's own changes are announced on the checkpoint channel as `run:<id>`. */
export const RUN_NOTIFY_PREFIX = 'run:';
