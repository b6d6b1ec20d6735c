import type { CheckpointObservers } from '../checkpoint.observers.js';
import type { CheckpointRepository } from '../checkpoint.repository.js';
import type { CheckpointSession } from '../checkpoint.session.js';
import { HANDED_BACK } from '../checkpoint.sql.js';

/**
 * How long a reaper leads without asking again. It asks at every look (twice a second); a
 * leader that crashed is replaced at the next look of another process (its lease session is
 * gone), one that froze or lost the database after this.
 */
export const LEAD_SECONDS = 3;

/** A running pg-boss key whose owner died, as the reaper saw it. */
export interface OrphanedJob {
  key: string;
  epoch: number;
  queue: string;
  jobId: string;
  dispatch: number;
  /** The attempt's owner (`host:pid:n` unless the caller named it). */
  owner: string | null;
  ownerPid: number | null;
  ownerStarted: string | null;
  /** The lease expired (a frozen or partitioned owner); otherwise its session is gone. */
  expired: boolean;
}

/**
 * The reaper's look-ups: running keys whose owner is dead, and marking them failed.
 * @internal used through the façade by the reaper
 */
export class CheckpointOrphans {
  constructor(
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
    private readonly observers: CheckpointObservers,
  ) {}

  /** See CheckpointService.findOrphans. */
  async findOrphans(reaper: string): Promise<OrphanedJob[] | undefined> {
    const identity = await this.session.identity();
    const lead = await this.repository.run<{ leads: boolean }>(
      'reap',
      undefined,
      this.repository.sql.leadReaper(reaper, identity.pid, identity.started, LEAD_SECONDS),
    );
    if (lead.rows.length === 0) return undefined;
    const { rows } = await this.repository.run<{
      key: string;
      epoch: string;
      queue: string;
      job_id: string;
      dispatch: number | null;
      owner: string | null;
      owner_pid: number | null;
      owner_started: string | null;
      expired: boolean;
    }>('reap', undefined, this.repository.sql.orphans());
    return rows.map((row) => ({
      key: row.key,
      epoch: Number(row.epoch),
      queue: row.queue,
      jobId: row.job_id,
      dispatch: row.dispatch ?? 0,
      owner: row.owner,
      ownerPid: row.owner_pid,
      ownerStarted: row.owner_started,
      expired: row.expired,
    }));
  }

  /** See CheckpointService.abandon. */
  async abandon(orphan: OrphanedJob): Promise<boolean> {
    const error = JSON.stringify({
      name: 'CheckpointWorkerLost',
      message: orphan.expired
        ? 'the worker did not renew its lease in time (frozen or cut off)'
        : 'the worker process died',
    });
    const { rowCount } = await this.repository.run(
      'reap',
      orphan.key,
      this.repository.sql.abandon(
        orphan.key,
        orphan.epoch,
        error,
        orphan.ownerPid,
        orphan.ownerStarted,
      ),
    );
    if (rowCount > 0) {
      this.session.announce(orphan.key);
      this.observers.emit('reaped', { key: orphan.key, epoch: orphan.epoch });
    }
    return rowCount > 0;
  }

  /** See CheckpointService.announceHandBack. */
  async announceHandBack(queue: string): Promise<void> {
    await this.repository.run('reap', undefined, this.repository.sql.handedBack(queue));
  }

  /** See CheckpointService.onHandBack. */
  async onHandBack(listener: (queue: string) => void): Promise<() => void> {
    return this.session.subscribeControl((action, queue) => {
      if (action === HANDED_BACK) listener(queue);
    });
  }
}
