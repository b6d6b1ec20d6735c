import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { PgBoss, type JobWithMetadata } from 'pg-boss';
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
import { CheckpointRunner, type CheckpointedMethod } from '../checkpoint.runner.js';
import { CheckpointService } from '../checkpoint.service.js';
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
 * The module's PgBoss instance: created from the `boss` option and started before anything can
 * inject it, or the application's own instance as given. Null without the option.
 */
export async function createBoss(options: ResolvedCheckpointOptions): Promise<PgBoss | null> {
  if (options.boss === undefined) return null;
  if (options.boss instanceof PgBoss) return options.boss;
  const boss = new PgBoss(options.boss);
  // pg-boss emits 'error' for background failures; without a listener Node would crash.
  const logger = new Logger('Checkpoint');
  boss.on('error', (error: Error) => logger.error(`pg-boss: ${error.message}`));
  await boss.start();
  return boss;
}

/**
 * pg-boss integration and the shutdown sequence. Registers every `@Checkpointed({ queue })`
 * method as the worker of its queue at bootstrap; hands the jobs of dead workers back at once;
 * and on shutdown stops fetching, lets in-flight attempts stop at a batch boundary, hands their
 * jobs back without spending a retry, and stops pg-boss before TypeORM closes the DataSource.
 */
@Injectable()
export class CheckpointQueues implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Checkpoint');
  private readonly registrations = new Map<string, QueueRegistration>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private reaper?: CheckpointReaper;
  private stopControl?: () => void;

  constructor(
    @Inject(PgBoss) private readonly boss: PgBoss | null,
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
    @Inject(CHECKPOINT_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly service: CheckpointService,
    private readonly runner: CheckpointRunner,
  ) {}

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

  async onApplicationBootstrap(): Promise<void> {
    const boss = this.boss;
    if (boss === null) return;
    // Every process with pg-boss reaps, for any queue: hand-written handlers record theirs too.
    this.reaper = new CheckpointReaper(boss, this.service);
    this.reaper.start();
    for (const { queue, method, instance } of this.registrations.values()) {
      const { options } = method;
      await boss.createQueue(
        queue,
        defined({
          retryLimit: options.retryLimit,
          retryDelay: options.retryDelay,
          retryBackoff: options.retryBackoff,
          retryDelayMax: options.retryDelayMax,
          expireInSeconds: options.expireInSeconds,
          retentionSeconds: options.retentionSeconds,
          deleteAfterSeconds: options.deleteAfterSeconds,
          heartbeatSeconds: options.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS,
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
          job === undefined ? undefined : this.handle(queue, method, instance, job),
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
   * The shutdown sequence: stop fetching, stop every attempt at its next batch boundary and wait
   * for them (at most `shutdownTimeoutMs`), let handlers hand their jobs back, return the lease
   * session to the pool, and stop pg-boss, all before TypeORM closes the DataSource.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.reaper?.stop();
    this.stopControl?.();
    const boss = this.boss;
    if (boss !== null) {
      await Promise.all(
        [...this.registrations.keys()].map((queue) => boss.offWork(queue, { wait: false })),
      );
    }
    this.service.stopAttempts();
    // One deadline for both: attempts stop at a batch boundary, then handlers hand jobs back.
    await this.settleWithin(
      [...this.runner.running, ...this.inFlight],
      this.options.shutdownTimeoutMs,
    );
    await this.service.close();
    if (boss !== null && !(this.options.boss instanceof PgBoss)) {
      await boss.stop({
        graceful: true,
        timeout: Math.max(1000, this.options.shutdownTimeoutMs),
        close: true,
      });
    }
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

  private async handle(
    queue: string,
    method: CheckpointedMethod,
    instance: object,
    job: JobWithMetadata<object>,
  ) {
    const boss = this.boss as PgBoss;
    const attempt = { id: job.id, retryCount: job.retryCount };
    const run = this.runner.run(method, instance, [job], {
      dispatch: job.retryCount,
      signal: job.signal,
      queue,
      jobId: job.id,
      // The job completes in the same transaction as the checkpoint.
      completeJob: async (manager, result) => {
        await boss.complete(queue, attempt, toOutput(result), { db: bossDb(manager) });
      },
    });
    this.inFlight.add(run);
    try {
      return await run;
    } catch (error) {
      if (error instanceof CheckpointPausedError || error instanceof CheckpointCancelledError) {
        await this.park(queue, job, error);
        return undefined;
      }
      if (this.service.shutdownSignal.aborted && error instanceof CheckpointAbortedError) {
        await handBackJob(boss, this.dataSource, queue, job, 'shutdown');
        return undefined;
      }
      throw error;
    } finally {
      this.inFlight.delete(run);
    }
  }

  /**
   * Takes the job of a paused or cancelled key out of the queue without spending a retry
   * (pg-boss's cancel); `resume` puts a paused one back. A resume that came in while the attempt
   * was stopping would find the job still active: it is put back here.
   */
  private async park(
    queue: string,
    job: JobWithMetadata<object>,
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
      if (!this.registrations.has(record.queue)) return;
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
