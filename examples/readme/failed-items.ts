import { Injectable } from '@nestjs/common';
import { FailedItemsService, type CheckpointPage, type FailedItem } from 'nestjs-checkpoint';

/** The failed-item ledger: what failed for good, and running it again after a fix. */
@Injectable()
export class Ledger {
  constructor(private readonly failedItems: FailedItemsService) {}

  /** Each item: { key, itemIndex, item, errorName, errorMessage, attempt, failedAt }. */
  ofKey(key: string): Promise<CheckpointPage<FailedItem>> {
    return this.failedItems.list({ key }); // pages of 1,000: pass `after` for the next one
  }

  /** Every chunk of a run: the keys whose run_id is runId. */
  ofRun(runId: string, after?: string): Promise<CheckpointPage<FailedItem>> {
    return this.failedItems.list({ runId, after });
  }

  /**
   * Marks the key: its next attempt runs only the ledger's items. `keys` says which keys were
   * marked (a running key is left alone: redrive it when its attempt ends), `items` how many.
   * Then call the method again with the same input; for a run, `redriveRun(runId)`.
   */
  async redrive(key: string, runAgain: () => Promise<void>): Promise<number> {
    const { items } = await this.failedItems.redrive(key);
    if (items > 0) await runAgain();
    return items;
  }
}
