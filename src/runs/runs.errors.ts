import { CheckpointError } from '../checkpoint.errors.js';
import { runMessages } from './runs.messages.js';

/** No run has this id. */
export class CheckpointRunNotFoundError extends CheckpointError {
  constructor(readonly runId: string) {
    super(runMessages.notFound(runId));
  }
}
