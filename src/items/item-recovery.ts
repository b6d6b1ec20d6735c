// What an attempt does after a batch's body threw: the state that the batch loop consults to
// pick its next batch (the same batch again, one item of a batch being replayed, or a normal
// one), and the decision for each failure. Pure logic; the loop does the waiting and writing.
import {
  backoffDelay,
  DEFAULT_REPLAY_TRIES,
  describeLimit,
  matches,
  skipAllowance,
  type ItemPolicies,
} from '../item-policy.js';

/**
 * How a batch was handed to the loop body: `batch` a normal one; `scan` one item of a failed
 * batch replayed item by item; `redrive` one ledger item run again.
 */
export type BatchMode = 'batch' | 'scan' | 'redrive';

/** The batch the loop body was running when the error left the loop. */
export interface OpenBatch {
  startIndex: number;
  count: number;
  mode: BatchMode;
  /** The first item (the only one in scan and redrive mode). */
  item: unknown;
  /** For `pages()`: the cursor after the batch's last item. */
  cursor: unknown;
}

/** What to do about one failure of a batch's body. */
export type Recovery =
  /** No policy names the error: the attempt fails, as without policies. */
  | { kind: 'fail' }
  /** Run the same batch again after `delayMs` (retry number `retry` of `limit`). */
  | { kind: 'retry'; retry: number; limit: number; delayMs: number }
  /** Replay the batch one item at a time. */
  | { kind: 'scan' }
  /** Write the item to the ledger and go on past it. */
  | { kind: 'skip' }
  /** A redriven item failed again: it stays in the ledger with the new error. */
  | { kind: 'keep' }
  /** Skipping this item would exceed the skip limit: the attempt fails. */
  | { kind: 'limit'; allowed: string };

/** One attempt's recovery state. Created only when the method has a retry or skip policy. */
export class ItemRecovery {
  /** Exclusive end of the range being replayed one item at a time (-1: none). */
  private scanEnd = -1;
  /** Retries each item of that range may have (see decide()). */
  private scanRetries = 0;
  /** The batch that failed last, and how many times in a row. */
  private failing?: { startIndex: number; mode: BatchMode; count: number; failures: number };

  constructor(private readonly policies: ItemPolicies) {}

  /** The next batch at `index`: its size and mode (`size` is the loop's normal size). */
  next(index: number, size: number): { size: number; mode: BatchMode } {
    if (index < this.scanEnd) return { size: 1, mode: 'scan' };
    const failing = this.failing;
    // A batch retried in place has the size it failed with, whatever the sizer says now.
    if (failing?.mode === 'batch' && failing.startIndex === index) {
      return { size: failing.count, mode: 'batch' };
    }
    return { size, mode: 'batch' };
  }

  /** Whether the item at `index` is the last of the range being replayed. */
  endsScan(index: number): boolean {
    return index + 1 >= this.scanEnd;
  }

  /** A batch committed: the next failure starts a fresh count of retries. */
  committed(): void {
    this.failing = undefined;
  }

  /**
   * Decides what to do about `error`, thrown by the body of `open`. `skipped` is the key's
   * ledger size, `items` the key's total (or the items seen so far).
   */
  decide(error: unknown, open: OpenBatch, skipped: number, items: number): Recovery {
    const previous = this.failing;
    const again = previous?.startIndex === open.startIndex && previous.mode === open.mode;
    const failures = again ? previous.failures + 1 : 1;
    this.failing = { startIndex: open.startIndex, mode: open.mode, count: open.count, failures };
    const { retry, skip } = this.policies;
    const retryable = retry !== undefined && matches(retry.on, error);
    const limit = open.mode === 'scan' ? this.scanRetries : (retry?.limit ?? 0);
    if (retryable && failures <= limit) {
      return {
        kind: 'retry',
        retry: failures,
        limit,
        delayMs: backoffDelay(retry.backoff, failures),
      };
    }
    const skippable = skip !== undefined && matches(skip.on, error);
    if (!retryable && !skippable) return { kind: 'fail' };
    this.failing = undefined;
    // A batch is replayed item by item after a skippable error, and also when its retries ran
    // out (each retry may have met a different transient item). After spent retries each item
    // gets `replayTries` tries, never the whole budget again: an item that always fails is tried
    // limit + 2 times by default. After a skippable error the batch's retries were not what
    // failed it, so each item keeps the policy's retries for its transient errors.
    if (open.mode === 'batch' && open.count > 1) {
      this.scanEnd = open.startIndex + open.count;
      this.scanRetries = retryable
        ? (retry.replayTries ?? DEFAULT_REPLAY_TRIES) - 1
        : (retry?.limit ?? 0);
      return { kind: 'scan' };
    }
    if (skip === undefined || !skippable) return { kind: 'fail' };
    if (open.mode === 'redrive') return { kind: 'keep' };
    if (skipped + 1 > skipAllowance(skip.limit, items)) {
      return { kind: 'limit', allowed: describeLimit(skip.limit, items) };
    }
    return { kind: 'skip' };
  }
}
