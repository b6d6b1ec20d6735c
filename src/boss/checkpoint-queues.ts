import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import type { Job, JobWithMetadata, PgBoss, QueueOptions } from 'pg-boss';
import type { DataSource } from 'typeorm';
import { CHECKPOINT_DATA_SOURCE, CHECKPOINT_OPTIONS } from '../checkpoint.constants.js';
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import {
  CheckpointAbortedError,
  CheckpointCancelledError,
  CheckpointConfigError,
  CheckpointPausedError,
} from '../checkpoint.errors.js';
import type { ControlAction } from '../checkpoint.interfaces.js';
import { messages } from '../checkpoint.messages.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import {
  CheckpointRunner,
  type AttemptHooks,
  type CheckpointedMethod,
} from '../checkpoint.runner.js';
import { CheckpointService } from '../checkpoint.service.js';
import { bossMessages } from './boss.messages.js';
import { CHECKPOINT_BOSS_HANDLE, guardStop, type BossHandle } from './checkpoint-boss.js';
import { affected, bossDb, handBackJob } from './checkpoint-hand-back.js';
import { CheckpointReaper } from './checkpoint-reaper.js';

/** @internal the runs room joins pg-boss statements to its transactions with it. */
export { bossDb };

/**
 * The reaper hands back a dead worker's job within about two seconds, but only once its
 * checkpoint row is running. A worker killed between pg-boss's fetch and the claim leaves no such row; the
 * heartbeat makes pg-boss retry that job after this long instead of after its expiry.
 */
const DEFAULT_HEARTBEAT_SECONDS = 30;

interface QueueRegistration {
  queue: string;
  method: CheckpointedMethod;
  instance: object;
}

/**
 * pg-boss integration and the shutdown sequence. Registers every `@Checkpointed({ queue })`
 * method as the worker of its queue at bootstrap; runs hand-written handlers' jobs under a
 * checkpoint (`CheckpointJobs`); hands the jobs of dead workers back at once; and on shutdown
 * stops fetching, lets in-flight attempts stop at a batch boundary and hands their jobs back
 * without spending a retry, before anyone's `stop()` reaches pg-boss.
 */
@Injectable()
export class CheckpointQueues
  implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly logger = new Logger('Checkpoint');
  private readonly registrations = new Map<string, QueueRegistration>();
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Queues whose jobs hand-written handlers ran: their fetching stops at shutdown too. */
  private readonly borrowedQueues = new Set<string>();
  private readonly boss: PgBoss | null;
  private reaper?: CheckpointReaper;
  private stopControl?: () => void;
  private draining?: Promise<void>;
  private unguard?: () => void;

  constructor(
    @Inject(CHECKPOINT_BOSS_HANDLE) private readonly handle: BossHandle,
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
    @Inject(CHECKPOINT_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly service: CheckpointService,
    private readonly runner: CheckpointRunner,
  ) {
    this.boss = handle.boss;
  }

  /** Called by the explorer for each `@Checkpointed({ queue })` method. */
  register(queue: string, method: CheckpointedMethod, instance: object): void {
    const existing = this.registrations.get(queue);
    if (existing !== undefined) {
      throw new CheckpointConfigError(
        messages.badDecoratorOptions(method.where, [
          `queue "${queue}" already has a worker: ${existing.method.where}`,
        ]),
      );
    }
    if (this.boss === null)
      throw new CheckpointConfigError(messages.bossMissing(method.where, queue));
    this.registrations.set(queue, { queue, method, instance });
  }

  /** Guards the instance: whoever stops pg-boss first runs the shutdown sequence. */
  onModuleInit(): void {
    if (this.boss !== null) this.unguard = guardStop(this.boss, () => this.drain());
  }

  async onApplicationBootstrap(): Promise<void> {
    const boss = this.boss;
    if (boss === null) return;
    // Every process with pg-boss reaps, for any queue: hand-written handlers record theirs too.
    this.reaper = new CheckpointReaper(boss, this.service);
    this.reaper.start();
    for (const { queue, method, instance } of this.registrations.values()) {
      const { options } = method;
      await this.ensureQueue(
        boss,
        queue,
        defined({
          retryLimit: options.retryLimit,
          retryDelay: options.retryDelay,
          retryBackoff: options.retryBackoff,
          retryDelayMax: options.retryDelayMax,
          expireInSeconds: options.expireInSeconds,
          retentionSeconds: options.retentionSeconds,
          deleteAfterSeconds: options.deleteAfterSeconds,
          heartbeatSeconds: options.heartbeatSeconds,
        }),
      );
      await boss.work(
        queue,
        {
          ...defined({
            localConcurrency: options.localConcurrency,
            pollingIntervalSeconds: options.pollingIntervalSeconds,
            heartbeatRefreshSeconds: options.heartbeatRefreshSeconds,
          }),
          batchSize: 1,
          includeMetadata: true,
        },
        async ([job]: JobWithMetadata<object>[]) =>
          job === undefined ? undefined : this.runJob(method, instance, [job], job, true),
      );
      this.logger.log(`${method.where} works queue "${queue}"`);
    }
    if (this.registrations.size === 0) return;
    this.stopControl = await this.service.onControl((action, key) => {
      void this.followControl(action, key);
    });
  }

  /** The queues this process works (its `@Checkpointed({ queue })` methods). */
  get queues(): string[] {
    return [...this.registrations.keys()];
  }

  /**
   * Creates the queue with the decorator's options, or, when it already exists (created by a
   * wrapper, or by a `send` first), applies the options that differ with `updateQueue()` and
   * says so: pg-boss's `createQueue` leaves an existing queue as it is, and a queue without the
   * heartbeat would leave a dead worker's job waiting for its expiry. The default heartbeat is
   * applied only where the queue has none.
   */
  private async ensureQueue(boss: PgBoss, queue: string, wanted: QueueOptions): Promise<void> {
    const existing = await boss.getQueue(queue);
    if (existing === null) {
      await boss.createQueue(queue, {
        ...wanted,
        heartbeatSeconds: wanted.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS,
      });
      return;
    }
    const target: QueueOptions = { ...wanted };
    if (target.heartbeatSeconds === undefined && existing.heartbeatSeconds == null) {
      target.heartbeatSeconds = DEFAULT_HEARTBEAT_SECONDS;
    }
    const changes: Partial<QueueOptions> = {};
    for (const [name, value] of Object.entries(target) as Array<[keyof QueueOptions, unknown]>) {
      if (value !== undefined && existing[name] !== value) {
        Object.assign(changes, { [name]: value });
      }
    }
    const described = Object.entries(changes).map(
      ([name, value]) =>
        `${name} ${JSON.stringify(existing[name as keyof QueueOptions] ?? null)} -> ${JSON.stringify(value)}`,
    );
    if (described.length === 0) return;
    try {
      await boss.updateQueue(queue, changes);
      this.logger.warn(bossMessages.queueOptionsApplied(queue, described));
    } catch (error) {
      this.logger.warn(
        bossMessages.queueOptionsNotApplied(queue, described, (error as Error).message),
      );
    }
  }

  /**
   * Runs one job of `queue` inline in the caller, through the same checkpointed path as a
   * pg-boss job (key `<queue>:<id>`, so a second call with the same id resumes). Only for a
   * queue this process works (see `queues`).
   * @internal used by CheckpointRuns for runs at or under `directThreshold` items
   */
  async runInline(queue: string, job: { id: string; data: object }): Promise<unknown> {
    const registration = this.registrations.get(queue);
    if (registration === undefined) {
      throw new CheckpointConfigError(
        `no @Checkpointed({ queue: '${queue}' }) method is registered in this process`,
      );
    }
    const inline = {
      id: job.id,
      name: queue,
      data: job.data,
      retryCount: 0,
      signal: new AbortController().signal,
    };
    return this.runner.run(registration.method, registration.instance, [inline], {
      queue,
      jobId: job.id,
    });
  }

  /**
   * The shutdown sequence, run once, before any module's destroy hook can stop pg-boss: in this
   * module's `onModuleDestroy`, or earlier, when the application or its wrapper calls
   * `boss.stop()` (the instance is guarded, see `guardStop`). Stops fetching, stops every attempt
   * at its next batch boundary and waits for them (at most `shutdownTimeoutMs`), and lets the
   * handlers hand their jobs back without spending a retry, while pg-boss and the DataSource
   * still work.
   */
  drain(): Promise<void> {
    this.draining ??= this.stopWork();
    return this.draining;
  }

  async onModuleDestroy(): Promise<void> {
    await this.drain();
  }

  /**
   * Returns the lease session to the pool and stops pg-boss when the module owns it, before
   * TypeORM closes the DataSource. An instance the application owns is the application's to stop.
   */
  async beforeApplicationShutdown(): Promise<void> {
    await this.drain();
    await this.service.close();
    this.unguard?.();
    if (this.boss !== null && this.handle.owned) {
      await this.boss.stop({
        graceful: true,
        timeout: Math.max(1000, this.options.shutdownTimeoutMs),
        close: true,
      });
    }
  }

  private async stopWork(): Promise<void> {
    this.reaper?.stop();
    this.stopControl?.();
    const boss = this.boss;
    if (boss !== null) {
      const queues = new Set([...this.registrations.keys(), ...this.borrowedQueues]);
      await Promise.all(
        [...queues].map((queue) =>
          boss
            .offWork(queue, { wait: false })
            .catch((error: Error) =>
              this.logger.warn(`could not stop fetching "${queue}": ${error.message}`),
            ),
        ),
      );
    }
    this.service.stopAttempts();
    // One deadline for both: attempts stop at a batch boundary, then handlers hand jobs back.
    await this.settleWithin(
      [...this.runner.running, ...this.inFlight],
      this.options.shutdownTimeoutMs,
    );
  }

  private async settleWithin(work: Promise<unknown>[], timeoutMs: number): Promise<void> {
    if (work.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    });
    const settled = Promise.allSettled(work).then(() => false);
    if (await Promise.race([settled, timedOut])) {
      this.logger.warn(`in-flight work did not stop at a batch boundary within ${timeoutMs} ms`);
    }
    clearTimeout(timer);
  }

  /**
   * Runs one attempt of `method` for a pg-boss job, whoever fetched it (the module's worker, a
   * wrapper's, a hand-written one): the checkpoint row records the queue and job id (so the
   * reaper and the hand-back cover it), the job's retry count is the dispatch, and in
   * transactional mode the job completes in the transaction that completes the key (when
   * `completeJob`). Stopped by shutdown, the job is handed back without spending a retry and
   * the call resolves with undefined: the caller's worker must not fail it again.
   * @internal used by the workers, CheckpointJobs and the explorer
   */
  async runJob(
    method: CheckpointedMethod,
    instance: object,
    args: unknown[],
    job: Job<unknown> & { retryLimit?: number },
    completeJob: boolean,
  ): Promise<unknown> {
    const queue = job.name;
    const boss = this.boss;
    if (boss !== null && !this.registrations.has(queue)) this.borrowedQueues.add(queue);
    if (boss !== null && this.service.shutdownSignal.aborted) {
      // Fetched while shutting down (by a worker that is not ours): give it straight back.
      await this.handBack(queue, job);
      return undefined;
    }
    const attempt = { id: job.id, retryCount: job.retryCount };
    const hooks: AttemptHooks = {
      dispatch: job.retryCount,
      signal: job.signal,
      queue,
      jobId: job.id,
    };
    if (boss !== null && completeJob) {
      // The job completes in the same transaction as the checkpoint.
      hooks.completeJob = async (manager, result) => {
        await boss.complete(queue, attempt, toOutput(result), { db: bossDb(manager) });
      };
    }
    const run = this.runner.run(method, instance, args, hooks);
    this.inFlight.add(run);
    try {
      return await run;
    } catch (error) {
      if (
        boss !== null &&
        (error instanceof CheckpointPausedError || error instanceof CheckpointCancelledError)
      ) {
        await this.park(queue, job, error);
        return undefined;
      }
      if (
        boss !== null &&
        this.service.shutdownSignal.aborted &&
        error instanceof CheckpointAbortedError
      ) {
        await this.handBack(queue, job);
        return undefined;
      }
      throw error;
    } finally {
      this.inFlight.delete(run);
    }
  }

  /**
   * Hands a job stopped by shutdown back without spending a retry (see `handBackJob`). A job
   * fetched by another worker than the module's (a wrapper's, a hand-written one) may come
   * without its metadata: its retry limit is read first.
   */
  private async handBack(
    queue: string,
    job: Job<unknown> & { retryLimit?: number },
  ): Promise<void> {
    const boss = this.boss as PgBoss;
    const retryLimit =
      job.retryLimit ?? (await boss.findJobs(queue, { id: job.id }))[0]?.retryLimit ?? 0;
    await handBackJob(
      boss,
      this.dataSource,
      queue,
      { id: job.id, retryCount: job.retryCount, retryLimit },
      'shutdown',
    );
  }

  /**
   * Takes the job of a paused or cancelled key out of the queue without spending a retry
   * (pg-boss's cancel); `resume` puts a paused one back. A resume that came in while the attempt
   * was stopping would find the job still active: it is put back here.
   */
  private async park(
    queue: string,
    job: Job<unknown>,
    error: CheckpointPausedError | CheckpointCancelledError,
  ): Promise<void> {
    const boss = this.boss as PgBoss;
    await boss.cancel(queue, { id: job.id, retryCount: job.retryCount });
    if (error instanceof CheckpointPausedError) {
      const record = await this.service.find(error.key);
      if (record !== null && record.control === null) await this.requeue(queue, job.id);
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
  private async followControl(action: ControlAction, key: string): Promise<void> {
    const boss = this.boss;
    if (boss === null || this.service.shutdownSignal.aborted) return;
    try {
      const record = await this.service.find(key);
      if (record?.queue == null || record.jobId === null) return;
      if (!this.registrations.has(record.queue) && !this.borrowedQueues.has(record.queue)) return;
      if (action === 'resume') {
        if (record.control === null) await this.requeue(record.queue, record.jobId);
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
  private async requeue(queue: string, jobId: string): Promise<void> {
    const boss = this.boss as PgBoss;
    const current = await boss.getJobById(queue, jobId);
    if (current === null || current.state !== 'cancelled') return;
    await this.dataSource.transaction(async (manager) => {
      const db = bossDb(manager);
      const resumed = await boss.resume(queue, jobId, { db });
      if (affected(resumed) === 0) return;
      if (current.startedOn !== null && current.startedOn !== undefined) {
        await boss.update(queue, undefined, { id: jobId, retryLimit: current.retryLimit + 1, db });
      }
    });
  }
}

/** pg-boss validates every key it is given, so options the user left out are not passed at all. */
function defined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}

/** pg-boss stores objects as a job's output; other values are wrapped. */
function toOutput(result: unknown): object | null {
  if (result === undefined) return null;
  return typeof result === 'object' && result !== null ? result : { value: result };
}
