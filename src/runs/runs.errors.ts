import { CheckpointError } from '../checkpoint.errors.js';
import { runMessages } from './runs.messages.js';

/** No run has this id. */
export class CheckpointRunNotFoundError extends CheckpointError {
  constructor(readonly runId: string) {
    super(runMessages.notFound(runId));
  }
}

/**
 * `start()` with the id of an existing run and other input: other items, another queue or another
 * chunk size. `differences` names each (`items`, `queue`, `chunkSize`); the run is unchanged.
 */
export class CheckpointRunConflictError extends CheckpointError {
  constructor(
    readonly runId: string,
    readonly differences: string[],
  ) {
    super(runMessages.conflict(runId, differences));
  }
}
