// Cancelling runs: the chunks' control, the run row and the chunk jobs in one transaction.
import type { PgBoss } from 'pg-boss';
import type { DataSource } from 'typeorm';
import { bossDb } from '../boss-db.js';
import { RUN_NOTIFY_PREFIX } from '../checkpoint.constants.js';
import { CheckpointConfigError, CheckpointStoreError } from '../checkpoint.errors.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointService } from '../checkpoint.service.js';
import { CheckpointSession } from '../checkpoint.session.js';
import { assertRunId } from './run-ids.js';
import type { RunReads } from './run-reads.js';
import { CheckpointRunNotFoundError } from './runs.errors.js';
import type { Run } from './runs.interfaces.js';
import { runMessages } from './runs.messages.js';
import type { RunsSql } from './runs.sql.js';

/** The cancel of runs (CheckpointRuns hands over to it). @internal */
export class RunCancel {
  constructor(
    private readonly sql: RunsSql,
    private readonly dataSource: DataSource,
    private readonly boss: PgBoss | null,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
    private readonly service: CheckpointService,
    private readonly reads: RunReads,
  ) {}

  async cancel(id: string): Promise<Run> {
    await this.cancelChunks(id);
    return this.reads.require(id);
  }

  /** Cancels the run (see cancel()); returns how many of its chunks took the cancel. */
  async cancelChunks(id: string): Promise<number> {
    assertRunId(id);
    const boss = this.boss;
    if ((await this.reads.get(id)) === null) throw new CheckpointRunNotFoundError(id);
    const taken = await this.dataSource.transaction(async (manager) => {
      // The jobs to cancel: every chunk's that has not finished (read before the control flips
      // the idle chunks to cancelled).
      const open = await this.repository.run<{ queue: string; job_id: string }>(
        'run-cancel',
        id,
        this.sql.openChunks(id),
        manager,
      );
      // Without pg-boss the jobs would stay queued: refused, rather than half done.
      if (boss === null && open.rows.length > 0) {
        throw new CheckpointConfigError(runMessages.cancelNeedsBoss(id, open.rows.length));
      }
      // Chunk rows before the run row: the order in which a completing chunk locks them.
      const chunks = await this.service.controlRun(id, 'cancel', { manager });
      await this.repository.run('run-cancel', id, this.sql.cancelRun(id), manager);
      const byQueue = new Map<string, string[]>();
      for (const row of open.rows) {
        byQueue.set(row.queue, [...(byQueue.get(row.queue) ?? []), row.job_id]);
      }
      if (boss !== null) {
        for (const [queue, ids] of byQueue) {
          try {
            await boss.cancel(queue, ids, { db: bossDb(manager) });
          } catch (error) {
            throw new CheckpointStoreError('run-cancel', id, error);
          }
        }
      }
      return chunks;
    });
    this.session.announce(RUN_NOTIFY_PREFIX + id);
    return taken;
  }
}
