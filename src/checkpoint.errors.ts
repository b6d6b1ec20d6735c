import { CHECKPOINT_CONTROLS, type CheckpointControl } from './checkpoint.constants.js';
import { messages } from './checkpoint.messages.js';

/** Base class of every error the library throws on purpose. */
export class CheckpointError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Module options that cannot work; thrown at bootstrap, naming each bad option. */
export class CheckpointConfigError extends CheckpointError {}

/** Data given to a write is invalid; nothing was written. */
export class CheckpointValidationError extends CheckpointError {}

/**
 * A read or write failed in the database. Never swallowed: a failed read must not look like
 * "no checkpoint", or a ten-hour job silently restarts from zero.
 */
export class CheckpointStoreError extends CheckpointError {
  constructor(
    readonly operation: string,
    readonly key: string | undefined,
    cause: unknown,
  ) {
    super(
      messages.storeFailed(operation, key, cause instanceof Error ? cause.message : String(cause)),
      {
        cause,
      },
    );
  }
}

/** Another attempt that is still alive owns the key. */
export class CheckpointLeaseConflictError extends CheckpointError {
  constructor(
    readonly key: string,
    message: string = messages.leaseConflict(key),
  ) {
    super(message);
  }
}

/** This attempt's epoch was superseded: a newer attempt owns the key. Its write changed nothing. */
export class CheckpointFencedError extends CheckpointError {
  constructor(
    readonly key: string,
    readonly epoch: number,
  ) {
    super(messages.fenced(key, epoch));
  }
}

/** The input's fingerprint differs from the stored one and `onInputChange` is `'fail'`. */
export class CheckpointInputChangedError extends CheckpointError {
  constructor(
    readonly key: string,
    readonly storedFingerprint: string,
    readonly fingerprint: string,
  ) {
    super(messages.inputChanged(key, storedFingerprint, fingerprint));
  }
}

/** The attempt stopped at a batch boundary because its signal fired (shutdown, lost ownership). */
export class CheckpointAbortedError extends CheckpointError {
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`checkpointed work on key "${key}" stopped at a batch boundary: ${reason}`);
  }
}

/**
 * Why an attempt stopped, from its signal's reason: a reason that is the library's own error as
 * it is, any other (an AbortError from fetch, say) as a CheckpointAbortedError saying why.
 */
export function abortedBy(key: string, reason: unknown): CheckpointError {
  if (reason instanceof CheckpointError) return reason;
  return new CheckpointAbortedError(key, reason instanceof Error ? reason.message : String(reason));
}

/** An operator paused the key: the attempt stopped at a batch boundary, or was not started. */
export class CheckpointPausedError extends CheckpointAbortedError {
  constructor(key: string) {
    super(key, messages.paused(key));
  }
}

/** An operator cancelled the key: the attempt stopped at a batch boundary and never runs again. */
export class CheckpointCancelledError extends CheckpointAbortedError {
  constructor(key: string) {
    super(key, messages.cancelled(key));
  }
}

/** `rewind` named an epoch that is no longer the key's: someone ran or changed it meanwhile. */
export class CheckpointEpochMovedError extends CheckpointError {
  constructor(
    readonly key: string,
    readonly expectedEpoch: number,
    readonly actualEpoch: number | null,
  ) {
    super(messages.epochMoved(key, expectedEpoch, actualEpoch));
  }
}

/**
 * The attempt's lease could not be renewed within `leaseTtlMs` (the database or the network was
 * unreachable): another attempt may take the key over. The runner resumes in place once the
 * database answers again, if the key is still this attempt's.
 */
export class CheckpointLeaseLapsedError extends CheckpointAbortedError {}

/**
 * A migration could not take the table locks its DDL needs within the bootstrap's patience:
 * long transactions of live workers (usually of the previous build) held them. Nothing was
 * applied; the process can start again once they committed (see docs/connections.md, Upgrading).
 */
export class CheckpointMigrationLockError extends CheckpointError {
  constructor(
    readonly version: number,
    readonly waitedMs: number,
    readonly blockers: string,
  ) {
    super(messages.migrationLocked(version, waitedMs, blockers));
  }
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  // admin_shutdown, crash_shutdown, cannot_connect_now (the server is starting or stopping)
  '57P01',
  '57P02',
  '57P03',
]);
const CONNECTION_MESSAGES =
  /Connection terminated|connection ended|Client has encountered a connection error|not queryable|the database system is (starting up|shutting down|in recovery mode)|no connection within|terminating connection|timeout exceeded when trying to connect/i;
/**
 * TypeORM releases a query runner whose connection failed; later use throws one of these (a
 * query through its manager, a query or commit on the runner itself).
 */
const CONNECTION_ERROR_NAMES = new Set([
  'QueryRunnerProviderAlreadyReleasedError',
  'QueryRunnerAlreadyReleasedError',
]);

/**
 * Whether an error (or anything in its cause chain) says that the connection to the database was
 * lost or could not be made: the database is restarting or unreachable, not refusing the work.
 */
export function isConnectionFailure(error: unknown): boolean {
  for (let depth = 0, current = error; depth < 8 && current != null; depth++) {
    if (current instanceof CheckpointLeaseLapsedError) return true;
    if (typeof current !== 'object') return false;
    const { code, message, name, cause, driverError } = current as {
      code?: unknown;
      message?: unknown;
      name?: unknown;
      cause?: unknown;
      driverError?: unknown;
    };
    if (typeof name === 'string' && CONNECTION_ERROR_NAMES.has(name)) return true;
    if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08'))) {
      return true;
    }
    if (typeof message === 'string' && CONNECTION_MESSAGES.test(message)) return true;
    current = cause ?? driverError;
  }
  return false;
}

/** The typed reason an attempt stops for when an operator asked. */
export function controlError(key: string, control: CheckpointControl): CheckpointAbortedError {
  return control === CHECKPOINT_CONTROLS.pause
    ? new CheckpointPausedError(key)
    : new CheckpointCancelledError(key);
}
