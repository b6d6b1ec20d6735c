import { Logger } from '@nestjs/common';
import type { DataSource, QueryRunner } from 'typeorm';
import { CheckpointStoreError } from '../checkpoint.errors.js';
import type { CheckpointBatch } from '../checkpointed.interface.js';

const logger = new Logger('Checkpoint');

/**
 * One batch of transactional mode: begins a transaction of its own, hands the batch with the
 * transaction's manager to the loop body (which runs while this generator is suspended at
 * `yield`), then `write`s the advance, which commits with the body's writes. When the consumer
 * leaves the loop (break or throw) the finally block rolls the batch back. `holding` is told when the
 * body starts and ends, so that a body that throws leaves its batch named for the recovery.
 */
export async function* batchInTransaction<T>(
  dataSource: DataSource,
  announcements: { deferAnnouncements(runner: QueryRunner): () => void },
  key: string,
  batch: Omit<CheckpointBatch<T>, 'manager'>,
  holding: (held: boolean) => void,
  write: (transaction: QueryRunner) => Promise<void>,
): AsyncGenerator<CheckpointBatch<T>> {
  const runner = dataSource.createQueryRunner('master');
  try {
    await runner.connect();
    await runner.startTransaction();
  } catch (error) {
    await runner.release().catch(() => undefined);
    throw new CheckpointStoreError('begin batch', key, error);
  }
  // The advance's announcement waits for the commit: a watcher must not read before it.
  const announce = announcements.deferAnnouncements(runner);
  let committed = false;
  try {
    holding(true);
    yield { ...batch, manager: runner.manager };
    holding(false);
    // The advance sends the COMMIT along with it; other writes leave it to this.
    await write(runner);
    if (runner.isTransactionActive) {
      await runner.commitTransaction().catch((error: unknown) => {
        throw new CheckpointStoreError('commit batch', key, error);
      });
    }
    committed = true;
    announce();
  } finally {
    if (!committed && runner.isTransactionActive) {
      await runner
        .rollbackTransaction()
        .catch((error: Error) => logger.warn(`rollback failed: ${error.message}`));
    }
    // A runner whose connection failed was released already.
    await runner.release().catch(() => undefined);
  }
}
