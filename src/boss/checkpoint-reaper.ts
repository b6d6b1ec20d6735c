import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { PgBoss } from 'pg-boss';
import type { CheckpointService, OrphanedJob } from '../checkpoint.service.js';

/** How often the leading reaper looks for jobs whose owner died (and the others ask who leads). */
const REAP_INTERVAL_MS = 500;
/**
 * How long an owner's vanished lease session must stay vanished before the reaper believes it
 * dead, unless its process is provably gone (see ownerProcessGone). A live process whose session
 * was cut (pg_terminate_backend, a pooler or database restart) reconnects and re-asserts its
 * leases well within this; a crashed one never does.
 */
const VANISHED_GRACE_MS = 1000;
/** A sighting older than this is not "the previous look" any more (the reaper was stalled). */
const SIGHTING_STALE_MS = VANISHED_GRACE_MS + 4 * REAP_INTERVAL_MS;
/** Owners named by this host's processes: `host:pid:n` (CheckpointOwnership). */
const LOCAL_OWNER_PREFIX = `${hostname()}:`;

/**
 * Hands the jobs of dead owners back to pg-boss at once, instead of after pg-boss's heartbeat
 * or expiry. Covers every running key that records a queue and job id, whichever process or
 * handler (decorated or hand-written) owned it. One reaper of all the processes looks at a time
 * (the `reaper` table's leader); the others ask at each tick whether it is still there, and one
 * of them leads at once when its session is gone.
 *
 * An owner is dead when its lease expired (frozen, partitioned: abandoned at once), or when its
 * lease session is gone from pg_stat_activity and either its process is provably gone (an owner
 * of this host whose pid no longer exists: abandoned at once) or the session stays gone on two
 * looks at least VANISHED_GRACE_MS apart (crashed elsewhere). The abandon statement checks the
 * same again, so a racing claim or a re-asserted lease always wins. An abandoned job is failed in
 * pg-boss, which retries it at once: a crash spends one retry, as pg-boss counts it. Then every
 * process hears of the hand-back and wakes its worker of that queue, which fetches the job
 * instead of waiting for its next poll.
 */
export class CheckpointReaper {
  private readonly logger = new Logger('Checkpoint');
  private timer?: NodeJS.Timeout;
  private running = false;
  /** This reaper's name in the `reaper` table. */
  private readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  /** Vanished owners seen at the previous looks: `key/epoch/pid/start` -> first seen. */
  private readonly sightings = new Map<string, number>();
  /** This process's pg-boss worker of each queue it works. */
  private readonly workers = new Map<string, string>();
  private stopListening?: Promise<(() => void) | undefined>;

  constructor(
    private readonly boss: PgBoss,
    private readonly service: CheckpointService,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.reap(), REAP_INTERVAL_MS).unref();
    this.stopListening ??= this.service
      .onHandBack((queue) => {
        const worker = this.workers.get(queue);
        if (worker !== undefined) this.boss.notifyWorker(worker);
      })
      .catch((error: Error) => {
        // Workers still find handed-back jobs at their next poll.
        this.logger.warn(`could not listen for handed-back jobs: ${error.message}`);
        return undefined;
      });
  }

  /** Wakes `workerId` (pg-boss's id of this process's worker of `queue`) on each hand-back. */
  wakes(queue: string, workerId: string): void {
    this.workers.set(queue, workerId);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    void this.stopListening?.then((stop) => stop?.());
    this.stopListening = undefined;
  }

  /** One look: abandons and hands back what is dead. */
  async reap(): Promise<void> {
    if (this.running || this.service.shutdownSignal.aborted) return;
    this.running = true;
    try {
      const now = Date.now();
      const orphans = (await this.service.findOrphans(this.id)) ?? [];
      const seen = new Set<string>();
      for (const orphan of orphans) {
        if (!orphan.expired && !ownerProcessGone(orphan.owner)) {
          const id = `${orphan.key}/${orphan.epoch}/${orphan.ownerPid}/${orphan.ownerStarted}`;
          seen.add(id);
          const first = this.sightings.get(id);
          if (first === undefined || now - first > SIGHTING_STALE_MS) {
            this.sightings.set(id, now);
            continue;
          }
          if (now - first < VANISHED_GRACE_MS) continue;
        }
        await this.handBack(orphan);
      }
      for (const id of this.sightings.keys()) if (!seen.has(id)) this.sightings.delete(id);
    } catch (error) {
      this.logger.warn(`could not look for jobs of dead workers: ${(error as Error).message}`);
    } finally {
      this.running = false;
    }
  }

  private async handBack(orphan: OrphanedJob): Promise<void> {
    if (!(await this.service.abandon(orphan))) return;
    await this.boss.fail(
      orphan.queue,
      { id: orphan.jobId, retryCount: orphan.dispatch },
      { message: orphan.expired ? 'worker lease expired' : 'worker process died' },
    );
    this.logger.warn(
      `job ${orphan.jobId} of "${orphan.queue}" lost its worker ` +
        `(${orphan.expired ? 'lease expired' : 'process gone'}); handed back to the queue`,
    );
    await this.service
      .announceHandBack(orphan.queue)
      .catch((error: Error) =>
        this.logger.warn(
          `could not announce the hand-back of job ${orphan.jobId}: ${error.message}`,
        ),
      );
  }
}

/**
 * Whether `owner` names a process of this host that no longer exists: then its vanished session
 * is no cut that a reconnection will mend, and no grace is needed. (A process of another PID
 * namespace under the same host name would look gone too; its key is taken only when its lease
 * session is gone as well, and the takeover is fenced like any other.)
 */
function ownerProcessGone(owner: string | null): boolean {
  if (owner === null || !owner.startsWith(LOCAL_OWNER_PREFIX)) return false;
  const [pid, sequence, ...rest] = owner.slice(LOCAL_OWNER_PREFIX.length).split(':');
  if (rest.length > 0 || !/^\d+$/.test(pid ?? '') || !/^\d+$/.test(sequence ?? '')) return false;
  if (Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
