import { Injectable } from '@nestjs/common';
import { FailedItemsService, type CheckpointPage, type FailedItem } from 'nestjs-checkpoint';

/** The failed-item ledger: what failed for good, and running it again after a fix. */
@Injectable()
export class Ledger {
  constructor(private readonly failedItems: FailedItemsService) {}

  /**
   * Each item: { key, itemIndex, item, errorClass, errorCode, errorMessage, errorName, attempt,
   * failedAt }; errorClass is the error's constructor.name, errorCode its `code` (or null).
   */
  ofKey(key: string): Promise<CheckpointPage<FailedItem>> {
    return this.failedItems.list({ key }); // pages of 1,000: pass `after` for the next one
  }

  /** Every chunk of a run: the keys whose run_id is runId. */
  ofRun(runId: string, after?: string): Promise<CheckpointPage<FailedItem>> {
    return this.failedItems.list({ runId, after });
  }

  /** All of a run's ledger, page after page: `more` says whether another page follows. */
  async *allOfRun(runId: string): AsyncGenerator<FailedItem> {
    for (let after: string | undefined, more = true; more;) {
      const page = await this.failedItems.list({ runId, after, limit: 500 });
      yield* page.items;
      more = page.more;
      after = page.after ?? undefined;
    }
  }

  /**
   * Runs the key's ledger items again: all of them, or only `items` (indexes from its ledger).
   * What must run is sent in the same transaction: the key's pg-boss job, when it settled, is
   * sent again (`sent`). A key called directly runs them at its next call: call the method again
   * with the same input. A running key is left alone (not in `keys`): redrive it when it ends.
   */
  async redrive(key: string, items?: number[]): Promise<number> {
    const asked = await this.failedItems.redrive(key, { items });
    return asked.items;
  }

  /** Every chunk of a run: the run reads `running` until the redriven chunks are done. */
  async redriveRun(runId: string): Promise<string[]> {
    return (await this.failedItems.redriveRun(runId)).sent;
  }
}
