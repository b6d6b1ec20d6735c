// A redrive request: marks the keys' ledger items and sends what must run again, in one
// transaction. FailedItemsService.redrive and redriveRun hand over to it.
import type { JobInsert, JobWithMetadata, PgBoss } from 'pg-boss';
import type { DataSource, EntityManager } from 'typeorm';
import { bossDb } from '../boss-db.js';
import { CHECKPOINT_STATES, RUN_NOTIFY_PREFIX } from '../checkpoint.constants.js';
import { CheckpointError, CheckpointStoreError } from '../checkpoint.errors.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointSession } from '../checkpoint.session.js';
import type { RedriveRequest } from './failed-item.interface.js';
import { CheckpointRedriveError } from './items.errors.js';
import { itemMessages } from './items.messages.js';
import type { ItemsSql } from './items.sql.js';

/** A row of `requestRedrive` (items.sql.ts). */
interface AskedRow {
  key: string;
  items: string;
  /** The key's state before the request. */
  was: string;
  queue: string | null;
  job_id: string | null;
  run_id: string | null;
  run_mode: 'queued' | 'direct' | null;
  hand_backs: number;
}

/** pg-boss job states after which nothing runs the job again unless it is sent again. */
const SETTLED_JOB = new Set(['completed', 'failed', 'cancelled']);
/**
 * Keys whose job an operator took out of the queue: their redrive runs when they are resumed
 * (resume puts the job back), so it is not sent here.
 */
const HELD = new Set<string>([CHECKPOINT_STATES.paused, CHECKPOINT_STATES.cancelled]);

/** @internal */
export class ItemRedrive {
  constructor(
    private readonly sql: ItemsSql,
    private readonly dataSource: DataSource,
    private readonly boss: PgBoss | null,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
  ) {}

  /**
   * Marks the ledger items of `key` (or of every chunk of `runId`), all of them or `items`, and
   * in the same transaction sends again the pg-boss job of each key whose job has settled
   * (completed, failed for good, cancelled): deleted and inserted with its id, its data and its
   * options, so that the key (`<queue>:<id>`) is the same and a worker runs it. A job still
   * waiting, retrying or active runs the redrive at its claim. A completed run of those keys
   * reads `running` again. Any failure rolls the whole request back.
   */
  async request(
    key: string | null,
    runId: string | null,
    items: number[] | null,
  ): Promise<RedriveRequest> {
    const target = key ?? runId ?? undefined;
    const { rows, sent, runs } = await this.dataSource.transaction(async (manager) => {
      const asked = await this.repository.run<AskedRow>(
        'redrive',
        target,
        this.sql.requestRedrive(key, runId, items),
        manager,
      );
      const resent: string[] = [];
      for (const row of asked.rows) {
        if (await this.sendAgain(row, manager)) resent.push(row.key);
      }
      const runIds = [...new Set(asked.rows.flatMap((row) => row.run_id ?? []))];
      if (runIds.length > 0) {
        await this.repository.run('redrive', target, this.sql.reopenRuns(runIds), manager);
      }
      return { rows: asked.rows, sent: resent, runs: runIds };
    });
    for (const row of rows) this.session.announce(row.key);
    for (const id of runs) this.session.announce(RUN_NOTIFY_PREFIX + id);
    return {
      keys: rows.map((row) => row.key),
      items: rows.reduce((sum, row) => sum + Number(row.items), 0),
      sent,
    };
  }

  /** Sends the key's job again when nothing else would run it; true when it did. */
  private async sendAgain(row: AskedRow, manager: EntityManager): Promise<boolean> {
    const { queue, job_id: jobId } = row;
    // A key called directly has no job: its next call runs the redrive. So does a direct run's
    // chunk, worked inline by start(): start() called again runs it.
    if (queue === null || jobId === null || row.run_mode === 'direct' || HELD.has(row.was)) {
      return false;
    }
    const boss = this.boss;
    if (boss === null) {
      throw new CheckpointRedriveError(row.key, itemMessages.redriveNeedsBoss(row.key, queue));
    }
    const db = bossDb(manager);
    const job = await this.bossCall(row.key, () =>
      boss.findJobs<object>(queue, { id: jobId, db }).then((jobs) => jobs[0]),
    );
    if (job === undefined) {
      throw new CheckpointRedriveError(row.key, itemMessages.redriveJobGone(row.key, queue, jobId));
    }
    if (!SETTLED_JOB.has(job.state)) {
      // In plain mode a worker completes the job after the key: the job would complete now.
      if (row.was === CHECKPOINT_STATES.completed && job.state === 'active') {
        throw new CheckpointRedriveError(row.key, itemMessages.redriveJobActive(row.key, jobId));
      }
      return false;
    }
    await this.bossCall(row.key, async () => {
      await boss.deleteJob(queue, jobId, { db });
      const ids = await boss.insert(queue, [resend(job, row.hand_backs)], { db, returnId: true });
      if (ids?.length !== 1) {
        throw new CheckpointRedriveError(row.key, itemMessages.redriveNotSent(row.key, jobId));
      }
    });
    await this.repository.run('redrive', row.key, this.sql.jobSentAgain(row.key), manager);
    return true;
  }

  private async bossCall<T>(key: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof CheckpointError) throw error;
      throw new CheckpointStoreError('redrive', key, error);
    }
  }
}

/**
 * The job as it was sent: its id (the key is `<queue>:<id>`), data and options; its retry limit
 * without the one added per hand-back.
 */
function resend(job: JobWithMetadata<object>, handBacks: number): JobInsert {
  return {
    id: job.id,
    data: job.data,
    priority: job.priority,
    retryLimit: Math.max(0, job.retryLimit - handBacks),
    retryDelay: job.retryDelay,
    retryBackoff: job.retryBackoff,
    retryDelayMax: job.retryDelayMax ?? undefined,
    expireInSeconds: job.expireInSeconds,
    deleteAfterSeconds: job.deleteAfterSeconds,
    heartbeatSeconds: job.heartbeatSeconds ?? undefined,
    singletonKey: job.singletonKey ?? undefined,
    deadLetter: job.deadLetter ?? undefined,
  };
}
