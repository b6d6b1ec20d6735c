import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { CheckpointProgress } from '../checkpoint.interfaces.js';
import type { CheckpointRepository, CheckpointRow } from '../checkpoint.repository.js';
import { assertKey } from '../checkpoint.validation.js';

/** The row of `key`, or undefined. A failed read throws. */
export async function findRow(
  repository: CheckpointRepository,
  operation: string,
  key: string,
): Promise<CheckpointRow | undefined> {
  assertKey(key);
  return (await repository.run(operation, key, repository.sql.find(key))).rows[0];
}

/** A row as progress: the original four fields, plus items, rate, ETA and state. */
export function toProgress(row: CheckpointRow): CheckpointProgress {
  const processedItems = Number(row.current_index);
  const totalItems = row.total_items === null ? null : Number(row.total_items);
  const doneThisAttempt = processedItems - Number(row.attempt_start_index);
  const seconds =
    row.attempt_started_at === null
      ? 0
      : (row.updated_at.getTime() - row.attempt_started_at.getTime()) / 1000;
  const itemsPerSecond = doneThisAttempt > 0 && seconds > 0 ? doneThisAttempt / seconds : null;
  const etaSeconds =
    row.state === CHECKPOINT_STATES.completed
      ? 0
      : totalItems !== null && itemsPerSecond !== null
        ? Math.max(0, totalItems - processedItems) / itemsPerSecond
        : null;
  return {
    key: row.key,
    currentBatch: Number(row.current_batch_index),
    totalBatches: Number(row.total_batches),
    processedBatches: Number(row.processed_batches),
    percentage:
      Number(row.total_batches) > 0
        ? Math.round((Number(row.processed_batches) / Number(row.total_batches)) * 100)
        : 0,
    processedItems,
    totalItems,
    state: row.state,
    attempt: row.attempt,
    itemsPerSecond,
    etaSeconds,
    skippedItems: Number(row.skipped_items),
    lastUpdate: row.updated_at,
  };
}
