import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { setTimeout as wait } from 'node:timers/promises';
import type { PgBoss } from 'pg-boss';
import { CHECKPOINT_BOSS, CHECKPOINT_OPTIONS, CHECKPOINT_STATES } from '../checkpoint.constants.js';
import {
  FIRST_SLICE,
  nextSliceSize,
  purgeKeys,
  restAfter,
  type PurgeCounts,
} from '../checkpoint.purge.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { retentionSql } from './retention.sql.js';

/** What one purge removed, and how: many short statements, none of which held rows for long. */
export interface PurgeResult extends PurgeCounts {
  /** Runs removed. */
  runs: number;
}

/**
 * The `retention` option: a pg-boss schedule that purges completed and cancelled keys and runs
 * older than `days`. Every process registers the same schedule and works its queue; pg-boss
 * creates one job per tick and hands it to one worker, so one process purges.
 */
@Injectable()
export class CheckpointRetention implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Checkpoint');
  private readonly sql: ReturnType<typeof retentionSql>;
  private working = false;

  constructor(
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
    @Inject(CHECKPOINT_BOSS) private readonly boss: PgBoss | null,
    private readonly repository: CheckpointRepository,
  ) {
    this.sql = retentionSql(options.schema);
  }

  /** The pg-boss queue (and schedule) name of this schema's purge. */
  get queue(): string {
    return `nestjs-checkpoint.retention.${this.options.schema}`;
  }

  async onApplicationBootstrap(): Promise<void> {
    const retention = this.options.retention;
    const boss = this.boss;
    if (retention === undefined || boss === null) return;
    await boss.createQueue(this.queue, { retryLimit: 1 });
    await boss.schedule(this.queue, retention.cron, { days: retention.days });
    await boss.work(this.queue, { batchSize: 1, pollingIntervalSeconds: 5 }, async () => {
      await this.purge(retention.days);
    });
    this.working = true;
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (!this.working || this.boss === null) return;
    this.working = false;
    // An application's own PgBoss keeps running: stop this worker only.
    await this.boss.offWork(this.queue, { wait: true }).catch(() => undefined);
  }

  /**
   * Purges completed and cancelled keys and runs not updated for `days` days, now, in slices
   * (see checkpoint.purge.ts): the runs first, then their chunks' keys and every other key.
   */
  async purge(days: number): Promise<PurgeResult> {
    const before = new Date(Date.now() - days * 86_400_000);
    const result: PurgeResult = { keys: 0, runs: 0, failedItems: 0, slices: 0, longestSliceMs: 0 };
    let size = FIRST_SLICE;
    for (;;) {
      const started = performance.now();
      const { rowCount } = await this.repository.run<{ id: string }>(
        'retention',
        undefined,
        this.sql.purgeRuns(before, size),
      );
      const ms = performance.now() - started;
      result.slices += 1;
      result.longestSliceMs = Math.max(result.longestSliceMs, Math.round(ms * 10) / 10);
      result.runs += rowCount;
      if (rowCount < size) break;
      size = nextSliceSize(size, ms);
      await wait(restAfter(ms));
    }
    for (const state of [CHECKPOINT_STATES.completed, CHECKPOINT_STATES.cancelled]) {
      const keys = await purgeKeys(this.repository, state, before);
      result.keys += keys.keys;
      result.failedItems += keys.failedItems;
      result.slices += keys.slices;
      result.longestSliceMs = Math.max(result.longestSliceMs, keys.longestSliceMs);
    }
    this.logger.log(
      `retention: purged ${result.keys} keys (${result.failedItems} failed items) and ${result.runs} runs ` +
        `finished more than ${days} days ago, in ${result.slices} statements (longest ${result.longestSliceMs} ms)`,
    );
    return result;
  }
}
