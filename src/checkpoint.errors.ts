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
