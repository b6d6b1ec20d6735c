import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { PgBoss } from 'pg-boss';
import { CHECKPOINT_BOSS, CHECKPOINT_OPTIONS } from '../checkpoint.constants.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { CheckpointRepository } from '../checkpoint.repository.js';
import { retentionSql } from './retention.sql.js';

/** What one purge removed. */
export interface PurgeResult {
  keys: number;
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

  /** Purges completed and cancelled keys and runs not updated for `days` days, now. */
  async purge(days: number): Promise<PurgeResult> {
    const before = new Date(Date.now() - days * 86_400_000);
    const { rows } = await this.repository.run<PurgeResult>(
      'retention',
      undefined,
      this.sql.purge(before),
    );
    const result = rows[0] ?? { keys: 0, runs: 0 };
    this.logger.log(
      `retention: purged ${result.keys} keys and ${result.runs} runs finished more than ${days} days ago`,
    );
    return result;
  }
}
