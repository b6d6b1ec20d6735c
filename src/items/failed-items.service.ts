import { Inject, Injectable } from '@nestjs/common';
import type { PgBoss } from 'pg-boss';
import type { DataSource, EntityManager } from 'typeorm';
import {
  CHECKPOINT_BOSS,
  CHECKPOINT_DATA_SOURCE,
  CHECKPOINT_OPTIONS,
} from '../checkpoint.constants.js';
import { CheckpointFencedError, CheckpointValidationError } from '../checkpoint.errors.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointSession } from '../checkpoint.session.js';
import { assertCount, assertKey, toJson } from '../checkpoint.validation.js';
import type { Query } from '../checkpoint.sql.js';
import type {
  FailedItem,
  FailedItemsQuery,
  RedriveOptions,
  RedriveRequest,
} from './failed-item.interface.js';
import { ItemRedrive } from './item-redrive.js';
import { errorDetail } from './items.errors.js';
import { itemsSql, type ItemsSql } from './items.sql.js';
import { decodeCursor, toPage, type CheckpointPage } from '../page-cursor.js';

/** The position in a ledger: a key and an item index. */
const KEY_AND_INDEX = ['text', 'int'] as const;

interface LedgerRow {
  key: string;
  item_index: string;
  item: unknown;
  error_name: string;
  error_message: string;
  /** Null in rows written before migration 11. */
  error_class: string | null;
  error_code: string | number | null;
  attempt: number;
  failed_at: Date;
}

/** Where a skipped item leaves the checkpoint (absolute values; null keeps the stored one). */
export interface SkipAdvance {
  currentIndex: number | null;
  currentBatchIndex: number | null;
  processedBatches: number | null;
  cursor: unknown;
}

/**
 * The failed-item ledger: items that a skip policy isolated, with their errors. Read it with
 * `list()`; `redrive()` runs only those items again (exactly once each, in transactional mode),
 * before anything else in the key's next attempt, removes the ones that pass, and sends the
 * key's pg-boss job again when it had settled, in the transaction that marks the items.
 *
 * The batch loop writes to it through the internal methods; every write is one statement that
 * also updates the key's checkpoint row, fenced by the attempt's epoch.
 */
@Injectable()
export class FailedItemsService {
  private readonly sql: ItemsSql;
  private readonly redrives: ItemRedrive;

  constructor(
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
    @Inject(CHECKPOINT_DATA_SOURCE) dataSource: DataSource,
    @Inject(CHECKPOINT_BOSS) boss: PgBoss | null,
  ) {
    this.sql = itemsSql(options.schema);
    this.redrives = new ItemRedrive(this.sql, dataSource, boss, repository, session);
  }

  /**
   * A page of the ledger of a key (`{ key }`) or of every chunk of a run (`{ runId }`), in key
   * and item order. Pass the page's `after` for the next one while `more` is true.
   */
  async list(query: FailedItemsQuery): Promise<CheckpointPage<FailedItem>> {
    const limit = query.limit ?? 1000;
    assertCount('limit', limit);
    const { key, runId } = this.target(query.key, query.runId);
    const after =
      query.after === undefined ? null : decodeCursor('failed items', query.after, KEY_AND_INDEX);
    const { rows } = await this.repository.run<LedgerRow>(
      'failed items',
      key ?? undefined,
      key !== null
        ? this.sql.listOfKey(key, after, limit)
        : this.sql.listOfRun(runId ?? '', after, limit),
    );
    return toPage(
      rows,
      limit,
      (row) => [row.key, Number(row.item_index)],
      (row) => ({
        key: row.key,
        itemIndex: Number(row.item_index),
        item: row.item,
        errorName: row.error_name,
        errorClass: row.error_class ?? row.error_name,
        errorCode: row.error_code,
        errorMessage: row.error_message,
        attempt: row.attempt,
        failedAt: row.failed_at,
      }),
    );
  }

  /**
   * Runs the ledger items of `key` again: all of them, or only `options.items` (item indexes
   * from its ledger; those not in it are ignored). Each item runs alone, before anything else in
   * the key's next attempt, in its own transaction in transactional mode; one that passes leaves
   * the ledger in that transaction, one that fails again stays with its new error. A completed
   * key is reopened for that attempt (it completes again at its end).
   *
   * What must run is sent in the transaction that marks the items: the key's pg-boss job, when
   * it has one that settled (completed, failed for good, cancelled), is sent again with its id,
   * data and options, and a completed run of the key reads `running` until it completes again.
   * A job still waiting, retrying or active runs the redrive when it is claimed. A key called
   * directly (no job) runs it at its next call, a direct run's chunk when `start()` is called
   * again, a paused key when it is resumed.
   *
   * Returns the keys asked, the ledger items they will run and the keys whose job was sent
   * again (`sent`). A key with none of those items in its ledger, or whose attempt is running,
   * is left alone (redrive it when the attempt ends). Throws `CheckpointRedriveError` (nothing
   * marked) when a job must be sent and cannot be: it is gone from pg-boss, it is still active
   * after its key completed, or the module has no pg-boss.
   *
   * @example
   * await failedItems.redrive('screening:42');                       // the whole ledger
   * await failedItems.redrive('screening:42', { items: [17, 905] }); // two of its items
   */
  redrive(key: string, options: RedriveOptions = {}): Promise<RedriveRequest> {
    assertKey(key);
    const items = options.items;
    if (items !== undefined) {
      if (
        !Array.isArray(items) ||
        items.length === 0 ||
        !items.every((item) => Number.isSafeInteger(item) && item >= 0)
      ) {
        throw new CheckpointValidationError(
          `redrive: items must be a non-empty array of item indexes (whole numbers >= 0), got ${JSON.stringify(items)}`,
        );
      }
    }
    return this.redrives.request(key, null, items === undefined ? null : [...new Set(items)]);
  }

  /**
   * `redrive()` for every chunk of a run (the keys whose `run_id` is `runId`): each chunk's
   * job that settled is sent again in the same transaction, and a completed run reads `running`
   * until the redriven chunks are done, then `completed`.
   */
  redriveRun(runId: string): Promise<RedriveRequest> {
    assertKey(runId);
    return this.redrives.request(null, runId, null);
  }

  /** @internal Writes a failed item to the ledger and advances the checkpoint past it. */
  async skip(
    key: string,
    epoch: number,
    itemIndex: number,
    value: unknown,
    error: unknown,
    advance: SkipAdvance,
    manager?: EntityManager,
  ): Promise<void> {
    await this.write(
      'skip',
      key,
      epoch,
      this.sql.skip(key, epoch, itemIndex, this.ledgerJson(value), errorDetail(error), {
        currentIndex: advance.currentIndex,
        currentBatchIndex: advance.currentBatchIndex,
        processedBatches: advance.processedBatches,
        cursor: toJson('cursor', advance.cursor, this.options.maxPayloadBytes),
      }),
      manager,
    );
  }

  /** @internal A redriven item passed: removes it from the ledger inside its transaction. */
  async passed(
    key: string,
    epoch: number,
    itemIndex: number,
    manager?: EntityManager,
  ): Promise<void> {
    await this.write('redrive', key, epoch, this.sql.passed(key, epoch, itemIndex), manager);
  }

  /**
   * @internal A page of the ledger items a redrive of `key` still has to run: those after item
   * `afterIndex` (-1: from the start).
   */
  async redriveItems(
    key: string,
    afterIndex: number,
    limit: number,
  ): Promise<Array<{ itemIndex: number; item: unknown }>> {
    // Read at each page: a redrive asked meanwhile may have added items.
    const { rows: requests } = await this.repository.run<{
      at: string | null;
      items: string[] | null;
    }>('redrive', key, this.sql.redriveRequest(key));
    const at = requests[0]?.at ?? null;
    if (at === null) return [];
    const { rows } = await this.repository.run<{ item_index: string; item: unknown }>(
      'redrive',
      key,
      this.sql.redriveItems(key, afterIndex, { at, items: requests[0]?.items ?? null }, limit),
    );
    return rows.map((row) => ({ itemIndex: Number(row.item_index), item: row.item }));
  }

  /** @internal The redrive pass of `key` is over. */
  async endRedrive(key: string, epoch: number): Promise<void> {
    await this.write('redrive', key, epoch, this.sql.endRedrive(key, epoch));
  }

  private async write(
    operation: string,
    key: string,
    epoch: number,
    query: Query,
    manager?: EntityManager,
  ): Promise<void> {
    const { rowCount } = await this.repository.run(operation, key, query, manager);
    // The statement's UPDATE matched no row: a newer attempt owns the key.
    if (rowCount === 0) throw new CheckpointFencedError(key, epoch);
    this.session.announce(key);
  }

  /** The ledger keeps what it can: a value with no JSON form, or too large, is stored as null. */
  private ledgerJson(value: unknown): string | null {
    try {
      return toJson('item', value, this.options.maxPayloadBytes);
    } catch {
      return null;
    }
  }

  private target(key: unknown, runId: unknown): { key: string | null; runId: string | null } {
    if ((key === undefined) === (runId === undefined)) {
      throw new CheckpointValidationError('failed items: give exactly one of key or runId');
    }
    if (key !== undefined) {
      assertKey(key);
      return { key, runId: null };
    }
    assertKey(runId);
    return { key: null, runId };
  }
}
