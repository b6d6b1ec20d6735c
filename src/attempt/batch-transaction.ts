import { Logger } from '@nestjs/common';
import type { DataSource, QueryRunner } from 'typeorm';
import { CheckpointStoreError } from '../checkpoint.errors.js';
import type { CheckpointBatch } from '../checkpointed.interface.js';

const logger = new Logger('Checkpoint');

/**
 * The transactions of one batch loop in transactional mode, a batch each. A batch's commit may
 * begin the next batch's transaction in the same message (`write` says whether it did): the
 * loop's next batch then runs on that connection instead of beginning one of its own. `close`
 * rolls back a transaction so begun that no batch came to use (the loop ended or stopped).
 */
export class BatchTransactions {
  /** Begun by the last commit, for the next batch. */
  private begun: QueryRunner | undefined;

  constructor(
    private readonly dataSource: DataSource,
    private readonly announcements: { deferAnnouncements(runner: QueryRunner): () => void },
    private readonly key: string,
  ) {}

  /**
   * One batch: hands the batch with its transaction's manager to the loop body (which runs while
   * this generator is suspended at `yield`), then `write`s the advance, which commits with the
   * body's writes. When the consumer leaves the loop (break or throw) the finally block rolls
   * the batch back. `holding` is told when the body starts and ends, so that a body that throws
   * leaves its batch named for the recovery.
   */
  async *batch<T>(
    batch: Omit<CheckpointBatch<T>, 'manager'>,
    holding: (held: boolean) => void,
    write: (transaction: QueryRunner) => Promise<boolean>,
  ): AsyncGenerator<CheckpointBatch<T>> {
    const runner = this.begun ?? (await this.begin());
    this.begun = undefined;
    // The advance's announcement waits for the commit: a watcher must not read before it.
    const announce = this.announcements.deferAnnouncements(runner);
    let committed = false;
    let kept = false;
    try {
      holding(true);
      yield { ...batch, manager: runner.manager };
      holding(false);
      // The advance sends the COMMIT along with it; other writes leave it to this.
      kept = await write(runner);
      if (!kept && runner.isTransactionActive) {
        await runner.commitTransaction().catch((error: unknown) => {
          throw new CheckpointStoreError('commit batch', this.key, error);
        });
      }
      committed = true;
      announce();
      if (kept) this.begun = runner;
    } finally {
      if (!committed) await rollBack(runner);
      // A runner whose connection failed was released already.
      if (!kept || !committed) await runner.release().catch(() => undefined);
    }
  }

  /** Rolls back and lets go of a transaction begun for a batch that never came. */
  async close(): Promise<void> {
    const runner = this.begun;
    this.begun = undefined;
    if (runner === undefined) return;
    await rollBack(runner);
    await runner.release().catch(() => undefined);
  }

  private async begin(): Promise<QueryRunner> {
    const runner = this.dataSource.createQueryRunner('master');
    try {
      await runner.connect();
      await runner.startTransaction();
      return runner;
    } catch (error) {
      await runner.release().catch(() => undefined);
      throw new CheckpointStoreError('begin batch', this.key, error);
    }
  }
}

async function rollBack(runner: QueryRunner): Promise<void> {
  if (!runner.isTransactionActive) return;
  await runner
    .rollbackTransaction()
    .catch((error: Error) => logger.warn(`rollback failed: ${error.message}`));
}
