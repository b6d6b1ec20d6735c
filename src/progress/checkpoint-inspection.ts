import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import { CheckpointValidationError } from '../checkpoint.errors.js';
import type { CheckpointRecord, ListOptions, PurgeOptions } from '../checkpoint.interfaces.js';
import { purgeKeys } from '../checkpoint.purge.js';
import {
  toRecord,
  type CheckpointRepository,
  type CheckpointRow,
} from '../checkpoint.repository.js';
import { assertAge, assertCount, assertOptionalState } from '../checkpoint.validation.js';
import { decodeCursor, TIME_AND_KEY, toPage, type CheckpointPage } from '../page-cursor.js';
import { findRow } from './checkpoint-reads.js';

/**
 * Reading rows whole (one, or a page of them) and purging old ones.
 * @internal the façade's find, list and purge
 */
export class CheckpointInspection {
  constructor(private readonly repository: CheckpointRepository) {}

  /** See CheckpointService.find. */
  async find(key: string): Promise<CheckpointRecord | null> {
    const row = await findRow(this.repository, 'find', key);
    return row === undefined ? null : toRecord(row);
  }

  /** See CheckpointService.list. */
  async list(options: ListOptions = {}): Promise<CheckpointPage<CheckpointRecord>> {
    const limit = options.limit ?? 100;
    assertCount('limit', limit);
    assertOptionalState('state', options.state);
    const after =
      options.after === undefined ? null : decodeCursor('list', options.after, TIME_AND_KEY);
    const { rows } = await this.repository.run<CheckpointRow & { page_at: string }>(
      'list',
      undefined,
      this.repository.sql.list(options.state ?? null, limit, after),
    );
    return toPage(rows, limit, (row) => [row.page_at, row.key], toRecord);
  }

  /** See CheckpointService.purge. */
  async purge(options: PurgeOptions): Promise<number> {
    assertOptionalState('state', options?.state);
    assertAge(options?.olderThan);
    const olderThan =
      options.olderThan instanceof Date
        ? options.olderThan
        : new Date(
            Date.now() -
              1000 *
                ((options.olderThan.days ?? 0) * 86400 +
                  (options.olderThan.hours ?? 0) * 3600 +
                  (options.olderThan.minutes ?? 0) * 60 +
                  (options.olderThan.seconds ?? 0)),
          );
    if (Number.isNaN(olderThan.getTime()))
      throw new CheckpointValidationError('purge: olderThan is not a valid date');
    const state = options.state ?? CHECKPOINT_STATES.completed;
    return (await purgeKeys(this.repository, state, olderThan)).keys;
  }
}
