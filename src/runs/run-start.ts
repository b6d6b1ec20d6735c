// Starting runs: the fan-out (run row, chunk rows and chunk jobs in one transaction), a direct
// run worked inline, and the planner behind chunkSize 'auto'.
import { createHash } from 'node:crypto';
import type { PgBoss } from 'pg-boss';
import type { DataSource, EntityManager } from 'typeorm';
import { bossDb } from '../boss-db.js';
import { CheckpointQueues } from '../boss/checkpoint-queues.js';
import { RUN_NOTIFY_PREFIX, RUN_STATES } from '../checkpoint.constants.js';
import {
  CheckpointConfigError,
  CheckpointStoreError,
  CheckpointValidationError,
} from '../checkpoint.errors.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { CheckpointSession } from '../checkpoint.session.js';
import { toJson } from '../checkpoint.validation.js';
import {
  assertQueueName,
  assertRunId,
  chunkJobId,
  isNonEmptyArray,
  isPositiveInteger,
} from './run-ids.js';
import type { RunReads } from './run-reads.js';
import { WORKER_ALIVE_SECONDS } from './runs.constants.js';
import type {
  PlanRunOptions,
  RunChunkData,
  RunPlan,
  StartedRun,
  StartRunOptions,
} from './runs.interfaces.js';
import { CheckpointRunConflictError } from './runs.errors.js';
import { runMessages } from './runs.messages.js';
import { chunkSlices, planChunks } from './runs.plan.js';
import type { RunsSql } from './runs.sql.js';

const DEFAULT_TARGET_CHUNK_MS = 60_000;

/** What a run was started with, kept in its row's `options` (a second start compares it). */
interface StartedWith {
  chunkSize: number | 'auto';
  directThreshold: number;
  /** sha-256 of the items as JSON. */
  items: string;
}

function itemsDigest(items: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(items)).digest('hex');
}
const DEFAULT_MAX_CHUNK_SIZE = 50_000;

/** The start of runs (CheckpointRuns hands over to it). @internal */
export class RunStarts {
  constructor(
    private readonly options: ResolvedCheckpointOptions,
    private readonly sql: RunsSql,
    private readonly dataSource: DataSource,
    private readonly boss: PgBoss | null,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
    private readonly queues: CheckpointQueues,
    private readonly reads: RunReads,
  ) {}

  async start<T, D = unknown>(queue: string, options: StartRunOptions<T, D>): Promise<StartedRun> {
    assertQueueName(queue);
    const { id, items, data } = options ?? ({} as StartRunOptions<T, D>);
    assertRunId(id);
    if (!isNonEmptyArray(items)) {
      throw new CheckpointValidationError(runMessages.emptyItems(items));
    }
    const chunkOption = options.chunkSize ?? 'auto';
    if (chunkOption !== 'auto' && !isPositiveInteger(chunkOption)) {
      throw new CheckpointValidationError(runMessages.badChunkSize(options.chunkSize));
    }
    const threshold = options.directThreshold ?? this.options.directThreshold;
    if (!Number.isSafeInteger(threshold) || threshold < 0) {
      throw new CheckpointValidationError(
        `runs.start: directThreshold must be a whole number >= 0 (got ${String(threshold)})`,
      );
    }
    const metadata = toJson('metadata', options.metadata, this.options.maxPayloadBytes);
    const boss = this.requireBoss();
    await this.assertQueueKnown(queue);

    const total = items.length;
    const direct = total <= threshold && this.queues.queues.includes(queue);
    // The chunks differ by at most one item (chunkSlices); chunkSize is the largest.
    const chunkCount = direct
      ? 1
      : chunkOption === 'auto'
        ? (await this.plan(queue, total, { targetChunkMs: options.targetChunkMs })).chunkCount
        : Math.ceil(total / Math.min(chunkOption, total));
    const slices = chunkSlices(total, chunkCount);
    const chunkSize = slices[0].size;
    const jobIds = Array.from({ length: chunkCount }, (_, i) => chunkJobId(id, i));
    const keys = jobIds.map((jobId) => `${queue}:${jobId}`);
    const totals = slices.map((slice) => slice.size);
    const chunkData = (i: number): RunChunkData<T, D> => ({
      items: items.slice(slices[i].offset, slices[i].offset + slices[i].size),
      data,
      run: { id, chunk: i, chunks: chunkCount, offset: slices[i].offset },
    });

    const startedWith: StartedWith = {
      chunkSize: chunkOption,
      directThreshold: threshold,
      items: itemsDigest(items),
    };
    const created = await this.dataSource.transaction(async (manager) => {
      const inserted = await this.repository.run(
        'run-start',
        id,
        this.sql.insertRun(
          id,
          queue,
          direct ? 'direct' : 'queued',
          total,
          chunkCount,
          chunkSize,
          JSON.stringify(startedWith),
          metadata,
        ),
        manager,
      );
      // The id exists: the same call gets that run back and nothing is sent twice; other input
      // is refused, naming what differs.
      if (inserted.rows.length === 0) {
        await this.assertSameStart(id, queue, startedWith, manager);
        return false;
      }
      await this.repository.run(
        'run-start',
        id,
        this.sql.insertChunks(id, queue, keys, jobIds, totals),
        manager,
      );
      if (!direct) {
        const jobs = jobIds.map((jobId, i) => ({ id: jobId, data: chunkData(i) }));
        try {
          await boss.insert(queue, jobs, { db: bossDb(manager) });
        } catch (error) {
          throw new CheckpointStoreError('run-start', id, error);
        }
      }
      return true;
    });
    if (created) this.session.announce(RUN_NOTIFY_PREFIX + id);

    const run = await this.reads.require(id);
    if (
      run.mode !== 'direct' ||
      run.state === RUN_STATES.completed ||
      run.state === RUN_STATES.cancelled ||
      !this.queues.queues.includes(run.queue)
    ) {
      return { ...run, created };
    }
    // A direct run: worked here, now; started again after a failure, it resumes.
    if (run.state === RUN_STATES.failed) {
      await this.repository.run('run-start', id, this.sql.reopenRun(id));
    }
    let result: unknown;
    try {
      result = await this.queues.runInline(run.queue, {
        id: chunkJobId(id, 0),
        data: {
          items: [...items],
          data,
          run: { id, chunk: 0, chunks: 1, offset: 0 },
        } satisfies RunChunkData<T, D>,
      });
    } catch (error) {
      await this.repository.run('run-fail', id, this.sql.failRun(id));
      this.session.announce(RUN_NOTIFY_PREFIX + id);
      throw error;
    }
    return { ...(await this.reads.require(id)), created, result };
  }

  async plan(queue: string, totalItems: number, options: PlanRunOptions = {}): Promise<RunPlan> {
    assertQueueName(queue);
    if (!isPositiveInteger(totalItems)) {
      throw new CheckpointValidationError(runMessages.badCount('totalItems', totalItems));
    }
    const targetChunkMs = options.targetChunkMs ?? DEFAULT_TARGET_CHUNK_MS;
    const minChunkSize = options.minChunkSize ?? 1;
    const maxChunkSize = options.maxChunkSize ?? DEFAULT_MAX_CHUNK_SIZE;
    for (const [field, value] of Object.entries({ targetChunkMs, minChunkSize, maxChunkSize })) {
      if (!isPositiveInteger(value)) {
        throw new CheckpointValidationError(runMessages.badCount(field, value));
      }
    }
    const [workers] = (
      await this.repository.run<{ alive: number; known: number }>(
        'run-plan',
        undefined,
        this.sql.workers(queue, WORKER_ALIVE_SECONDS),
      )
    ).rows;
    const [measured] = (
      await this.repository.run<{ item_ms: number | null; runs: number }>(
        'run-plan',
        undefined,
        this.sql.measured(queue),
      )
    ).rows;
    const itemMs = measured?.item_ms ?? null;
    return {
      queue,
      measuredRuns: measured?.runs ?? 0,
      ...planChunks({
        totalItems,
        workers: workers?.alive ?? 0,
        itemMs: itemMs === null ? null : Math.round(itemMs * 1000) / 1000,
        targetChunkMs,
        minChunkSize,
        maxChunkSize,
      }),
    };
  }

  /** Refuses a second start of `id` with another queue, other items or another chunk size. */
  private async assertSameStart(
    id: string,
    queue: string,
    startedWith: StartedWith,
    manager: EntityManager,
  ): Promise<void> {
    const { rows } = await this.repository.run<{
      queue: string;
      options: Partial<StartedWith> | null;
    }>('run-start', id, this.sql.startedWith(id), manager);
    const stored = rows[0];
    if (stored === undefined) return;
    const differences: string[] = [];
    if (stored.queue !== queue) differences.push(`queue ("${stored.queue}", not "${queue}")`);
    // Runs started before the digest was stored are not compared on their items.
    if (stored.options?.items !== undefined && stored.options.items !== startedWith.items) {
      differences.push('items');
    }
    if (
      stored.options?.chunkSize !== undefined &&
      stored.options.chunkSize !== startedWith.chunkSize
    ) {
      differences.push(
        `chunkSize (${JSON.stringify(stored.options.chunkSize)}, not ${JSON.stringify(startedWith.chunkSize)})`,
      );
    }
    if (differences.length > 0) throw new CheckpointRunConflictError(id, differences);
  }

  private requireBoss(): PgBoss {
    if (this.boss === null) throw new CheckpointConfigError(runMessages.bossMissing());
    return this.boss;
  }

  /** A queue is known when a process works it (now or ever) or pg-boss has it. */
  private async assertQueueKnown(queue: string): Promise<void> {
    if (this.queues.queues.includes(queue)) return;
    const boss = this.requireBoss();
    try {
      if ((await boss.getQueue(queue)) !== null) return;
    } catch (error) {
      throw new CheckpointStoreError('run-start', undefined, error);
    }
    const [workers] = (
      await this.repository.run<{ known: number }>(
        'run-start',
        undefined,
        this.sql.workers(queue, WORKER_ALIVE_SECONDS),
      )
    ).rows;
    if ((workers?.known ?? 0) > 0) return;
    throw new CheckpointValidationError(runMessages.unknownQueue(queue));
  }
}
