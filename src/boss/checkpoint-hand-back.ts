import { Logger } from '@nestjs/common';
import type { PgBoss } from 'pg-boss';
import type { DataSource, EntityManager } from 'typeorm';
import { bossDb } from '../boss-db.js';

/** The pg-boss fields of an active job that a hand-back needs. */
export interface ActiveJob {
  id: string;
  retryCount: number;
  retryLimit: number;
}

const logger = new Logger('Checkpoint');

/**
 * Returns an active job to its queue without spending a retry: fail it and raise its retry
 * limit by one, in one transaction, so the next worker claims it at once and the retries left
 * stay as they were. pg-boss offers no hand-back of an active job that spends nothing, and its
 * job table is not ours to write. When that cannot be done the job is failed (one retry spent),
 * so that it is never left active until its expiry.
 *
 * pg-boss counts the next pickup in the job's `retry_count` all the same: its fetch adds one to
 * the count of every job that had started, and the count names the attempt in its fence against
 * stale workers, so no pg-boss 12 call may take it back. `record` counts the hand-back on the
 * key (`hand_backs`) in the same transaction, so that `retry_count - hand_backs` is the retries
 * really spent.
 */
export async function handBackJob(
  boss: PgBoss,
  dataSource: DataSource,
  queue: string,
  job: ActiveJob,
  reason: string,
  record?: (manager: EntityManager) => Promise<unknown>,
): Promise<void> {
  const attempt = { id: job.id, retryCount: job.retryCount };
  try {
    await dataSource.transaction(async (manager) => {
      const db = bossDb(manager);
      const failed = await boss.fail(queue, attempt, { handedBack: reason }, { db });
      if (affected(failed) === 0) return;
      await record?.(manager);
      const updated = await boss.update(queue, undefined, {
        id: job.id,
        retryLimit: job.retryLimit + 1,
        startAfter: 0,
        db,
      });
      // The hand-back landed on the last allowed attempt: fail went terminal, so revive it.
      if (updated.updated === 0) await boss.retry(queue, job.id, { db });
    });
    logger.log(`handed job ${job.id} of "${queue}" back to the queue (${reason})`);
  } catch (error) {
    logger.warn(
      `could not hand job ${job.id} back without a retry (${(error as Error).message}); failing it`,
    );
    await boss.fail(queue, attempt, { handedBack: reason });
  }
}

/** The rows a pg-boss command changed (its responses carry `affected`). */
export function affected(response: object): number {
  return (response as { affected?: number }).affected ?? 0;
}
