import { CheckpointValidationError } from '../checkpoint.errors.js';
import type { CheckpointData, WriteOptions } from '../checkpoint.interfaces.js';
import { messages } from '../checkpoint.messages.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import type { CheckpointRepository } from '../checkpoint.repository.js';
import type { CheckpointSession } from '../checkpoint.session.js';
import { assertCount, assertKey, assertWriteOptions, toJson } from '../checkpoint.validation.js';
import { findRow } from '../progress/checkpoint-reads.js';

/**
 * The seed's operations on a whole checkpoint: save it (replacing the one before), load it,
 * clear it. Each is one statement.
 * @internal the façade's saveCheckpoint, loadCheckpoint and clearCheckpoint
 */
export class CheckpointRecords {
  constructor(
    private readonly options: ResolvedCheckpointOptions,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
  ) {}

  /** See CheckpointService.saveCheckpoint. */
  async save(key: string, checkpoint: CheckpointData, options: WriteOptions = {}): Promise<void> {
    assertKey(key);
    assertWriteOptions('saveCheckpoint', options);
    if (typeof checkpoint !== 'object' || checkpoint === null) {
      throw new CheckpointValidationError(messages.notAnObject('checkpoint', checkpoint));
    }
    for (const field of [
      'currentBatchIndex',
      'currentIndex',
      'processedBatches',
      'totalBatches',
    ] as const) {
      assertCount(field, checkpoint?.[field]);
    }
    if (checkpoint.processedBatches > checkpoint.totalBatches) {
      throw new CheckpointValidationError(
        messages.processedOverTotal(checkpoint.processedBatches, checkpoint.totalBatches),
      );
    }
    const query = this.repository.sql.save(
      key,
      checkpoint.currentBatchIndex,
      checkpoint.currentIndex,
      checkpoint.processedBatches,
      checkpoint.totalBatches,
      this.json('intermediateResult', checkpoint.intermediateResult),
      this.json('metadata', checkpoint.metadata),
    );
    await this.repository.run('save', key, query, options.manager);
    this.session.announce(key);
  }

  /** See CheckpointService.loadCheckpoint. */
  async load(key: string): Promise<CheckpointData | null> {
    const row = await findRow(this.repository, 'load', key);
    if (row === undefined) return null;
    const data: CheckpointData = {
      currentBatchIndex: Number(row.current_batch_index),
      currentIndex: Number(row.current_index),
      processedBatches: Number(row.processed_batches),
      totalBatches: Number(row.total_batches),
      lastUpdate: row.updated_at,
    };
    if (row.intermediate_result !== null) data.intermediateResult = row.intermediate_result;
    if (row.metadata !== null) data.metadata = row.metadata;
    return data;
  }

  /** See CheckpointService.clearCheckpoint. */
  async clear(key: string): Promise<void> {
    assertKey(key);
    await this.repository.run('clear', key, this.repository.sql.remove(key));
    this.session.announce(key);
  }

  private json(field: string, value: unknown): string | null {
    return toJson(field, value, this.options.maxPayloadBytes);
  }
}
