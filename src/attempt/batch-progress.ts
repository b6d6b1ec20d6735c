import type { AdvanceProgress } from '../checkpoint.interfaces.js';

/** Where an attempt stands before a batch commits: what its advance moves on from. */
export interface AttemptPosition {
  nextIndex: number;
  batchIndex: number;
  processedBatches: number;
  totalItems: number | null;
}

/**
 * The absolute progress a batch of `count` items writes. An item replayed alone that does not
 * end its replayed batch (`endsBatch` false) moves the position only. With a known item total,
 * the batches still to come are counted at the loop's normal `size`.
 */
export function batchProgress(
  at: AttemptPosition,
  count: number,
  size: number,
  endsBatch: boolean,
  cursor: unknown,
  intermediateResult: unknown,
): AdvanceProgress {
  const currentIndex = at.nextIndex + count;
  const processedBatches = at.processedBatches + (endsBatch ? 1 : 0);
  const remaining = at.totalItems === null ? null : Math.max(0, at.totalItems - currentIndex);
  return {
    currentIndex,
    currentBatchIndex: at.batchIndex + (endsBatch ? 1 : 0),
    processedBatches,
    // Inside a replayed batch the total is left as stored: one-item steps would distort it.
    totalBatches:
      remaining === null || !endsBatch ? undefined : processedBatches + Math.ceil(remaining / size),
    totalItems: at.totalItems ?? undefined,
    cursor,
    intermediateResult,
  };
}
