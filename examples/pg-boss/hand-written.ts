// Way 3: a handler written by hand. The application's worker fetches the job (here `boss.work()`
// at bootstrap, as a wrapper's `@Work(queue)` decorator does); `CheckpointJobs.run()` runs the
// body under a checkpoint, so the handler gets resume, the reaper and the hand-back too.
import { Inject, Injectable, Module, type DynamicModule } from '@nestjs/common';
import type { OnApplicationBootstrap } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { PgBoss, type Job } from 'pg-boss';
import { CheckpointJobs, CheckpointModule } from '../../src/index.js';
import { AppPgBossModule } from './borrowed-instance.js';
import { screenItems, type ScreeningInput } from './screening.job.js';

// #region hand-written
@Injectable()
export class HandWrittenScreening implements OnApplicationBootstrap {
  constructor(
    @Inject(PgBoss) private readonly boss: PgBoss,
    private readonly jobs: CheckpointJobs,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.boss.createQueue('screening-hand', { heartbeatSeconds: 30 });
    await this.boss.work<ScreeningInput>('screening-hand', (jobs) => this.handle(jobs));
  }

  /** pg-boss 12 hands out an array; run() takes a job or the array. */
  handle(jobs: Job<ScreeningInput>[]) {
    return this.jobs.run(jobs, (ctx, job) => screenItems(job, ctx), {
      batchSize: 50,
      transactional: true,
      completeJob: true, // the job completes in the checkpoint's transaction
    });
  }
}

@Module({})
export class HandWrittenApp {
  static register(url: string, schema: string): DynamicModule {
    return {
      module: HandWrittenApp,
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url, schema }),
        AppPgBossModule.forRoot(url, `${schema}_boss`),
        CheckpointModule.forRoot({ schema, bossToken: PgBoss }),
      ],
      providers: [HandWrittenScreening],
    };
  }
}
// #endregion hand-written
