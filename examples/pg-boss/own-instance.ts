// Way 1: the library's own pg-boss. CheckpointModule creates it from constructor options, starts
// it after the DataSource and stops it before the DataSource closes.
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Job, PgBoss } from 'pg-boss';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  CheckpointModule,
  Checkpointed,
  InjectCheckpointBoss,
  type CheckpointContext,
} from '../../src/index.js';
import { screenItems, type ScreeningInput } from './screening.job.js';

// #region own-instance
@Injectable()
export class OwnInstanceScreening {
  constructor(@InjectCheckpointBoss() private readonly boss: PgBoss) {}

  /** Anyone sends jobs through the library's instance. */
  async start(ids: number[]): Promise<string | null> {
    return this.boss.send('screening-own', { ids });
  }

  @Checkpointed({ queue: 'screening-own', batchSize: 50, transactional: true })
  async screen(
    job: Job<ScreeningInput>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<{ screened: number }> {
    return screenItems(job, ctx);
  }
}

@Module({})
export class OwnInstanceApp {
  static register(url: string, schema: string): DynamicModule {
    return {
      module: OwnInstanceApp,
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url, schema }),
        CheckpointModule.forRoot({
          schema,
          boss: { connectionString: url, schema: `${schema}_boss` },
        }),
      ],
      providers: [OwnInstanceScreening],
    };
  }
}
// #endregion own-instance
