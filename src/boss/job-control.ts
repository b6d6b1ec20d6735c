import type { Logger } from '@nestjs/common';
import type { Job, PgBoss } from 'pg-boss';
import type { DataSource, EntityManager } from 'typeorm';
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import { CheckpointPausedError, type CheckpointCancelledError } from '../checkpoint.errors.js';
import type { ControlAction } from '../checkpoint.interfaces.js';
import type { CheckpointService } from '../checkpoint.service.js';
import { bossDb } from '../boss-db.js';
import { affected } from './checkpoint-hand-back.js';

/**
 * The jobs of keys an operator paused, resumed or cancelled: a paused or cancelled job leaves
 * its queue without spending a retry, a resumed one goes back.
 */
export class JobControl {
  constructor(
    private readonly boss: PgBoss,
    private readonly dataSource: DataSource,
    private readonly service: CheckpointService,
    private readonly logger: Logger,
    /** Whether this process works `queue` (its own workers' queues and the borrowed ones). */
    private readonly works: (queue: string) => boolean,
    /** Counts a pickup that spends no retry on the key (see handBackJob). */
    private readonly countHandBack: (key: string, manager: EntityManager) => Promise<unknown>,
  ) {}

  /**
   * Takes the job of a paused or cancelled key out of the queue without spending a retry
   * (pg-boss's cancel); `resume` puts a paused one back. A resume that came in while the attempt
   * was stopping would find the job still active: it is put back here.
   */
  async park(
    queue: string,
    job: Job<unknown>,
    error: CheckpointPausedError | CheckpointCancelledError,
  ): Promise<void> {
    const boss = this.boss;
    await boss.cancel(queue, { id: job.id, retryCount: job.retryCount });
    if (error instanceof CheckpointPausedError) {
      const record = await this.service.find(error.key);
      if (record !== null && record.control === null) await this.requeue(queue, job.id, error.key);
    }
    this.logger.log(
      `job ${job.id} of "${queue}" ${error instanceof CheckpointPausedError ? 'paused' : 'cancelled'}`,
    );
  }

  /**
   * Moves the job of a key an operator paused, resumed or cancelled in any process: a key nobody
   * runs has its job taken out of the queue or put back now; a running one is parked by its own
   * handler when it stops. Every process working the queue does it; pg-boss's cancel and resume
   * change nothing the second time.
   */
  async followControl(action: ControlAction, key: string): Promise<void> {
    const boss = this.boss;
    if (this.service.shutdownSignal.aborted) return;
    try {
      const record = await this.service.find(key);
      if (record?.queue == null || record.jobId === null) return;
      if (!this.works(record.queue)) return;
      if (action === 'resume') {
        if (record.control === null) await this.requeue(record.queue, record.jobId, key);
      } else if (
        record.state === CHECKPOINT_STATES.paused ||
        record.state === CHECKPOINT_STATES.cancelled
      ) {
        await boss.cancel(record.queue, record.jobId);
      }
    } catch (error) {
      this.logger.warn(
        `could not move the job of "${key}" (${action}): ${(error as Error).message}`,
      );
    }
  }

  /**
   * Puts a paused job back in the queue. pg-boss counts the next fetch of a job that had started
   * as a retry, so its retry limit is raised by one in the same transaction: a pause spends none.
   * Only the process whose resume moved the job raises it.
   */
  private async requeue(queue: string, jobId: string, key: string): Promise<void> {
    const boss = this.boss;
    const current = await boss.getJobById(queue, jobId);
    if (current === null || current.state !== 'cancelled') return;
    await this.dataSource.transaction(async (manager) => {
      const db = bossDb(manager);
      const resumed = await boss.resume(queue, jobId, { db });
      if (affected(resumed) === 0) return;
      if (current.startedOn !== null && current.startedOn !== undefined) {
        await boss.update(queue, undefined, { id: jobId, retryLimit: current.retryLimit + 1, db });
        await this.countHandBack(key, manager);
      }
    });
  }
}
