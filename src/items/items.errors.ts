import { CheckpointError } from '../checkpoint.errors.js';
import { itemMessages } from './items.messages.js';

/**
 * More items failed than `skip.limit` allows. The attempt fails; the checkpoint stays at the
 * item that would have gone over the limit and the ledger keeps every item skipped before it,
 * so a later attempt (with a higher limit, or after a fix) resumes there.
 */
export class CheckpointSkipLimitError extends CheckpointError {
  constructor(
    readonly key: string,
    /** The item index the attempt stopped at. */
    readonly itemIndex: number,
    /** Items of the key in the ledger when the limit was reached. */
    readonly skippedItems: number,
    allowed: string,
    cause: unknown,
  ) {
    super(itemMessages.skipLimit(key, allowed, skippedItems, itemIndex, describe(cause)), {
      cause,
    });
  }
}

/** `name: message` of a thrown value, for messages and the ledger. */
export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * A redrive could not send what must run again (the key's pg-boss job is gone, still active, or
 * there is no pg-boss to send it with). Nothing was marked: the request rolled back whole.
 */
export class CheckpointRedriveError extends CheckpointError {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}
