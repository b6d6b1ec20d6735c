// Way 2: the application's own pg-boss, provided under the `PgBoss` class token and stopped in
// its own onModuleDestroy, as @apricote/nest-pg-boss and @wavezync/nestjs-pgboss do. The library
// borrows it: it never starts or stops it, and its shutdown sequence (stop fetching, stop at a
// batch boundary, hand jobs back without spending a retry) runs before that stop goes through.
import {
  Global,
  Inject,
  Injectable,
  Logger,
  Module,
  type DynamicModule,
  type OnModuleDestroy,
} from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { PgBoss, type Job } from 'pg-boss';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  CheckpointModule,
  Checkpointed,
  type CheckpointContext,
} from '../../src/index.js';
import { screenItems, type ScreeningInput } from './screening.job.js';

// #region borrowed-instance
/** The application's pg-boss module (or a wrapper's): a global PgBoss, stopped on destroy. */
@Global()
@Module({})
export class AppPgBossModule implements OnModuleDestroy {
  constructor(@Inject(PgBoss) private readonly boss: PgBoss) {}

  static forRoot(connectionString: string, schema: string): DynamicModule {
    return {
      module: AppPgBossModule,
      providers: [
        {
          provide: PgBoss,
          useFactory: async () => {
            const boss = new PgBoss({ connectionString, schema });
            boss.on('error', (error: Error) => new Logger('PgBoss').error(error.message));
            return boss.start();
          },
        },
      ],
      exports: [PgBoss],
    };
  }

  async onModuleDestroy(): Promise<void> {
    await this.boss.stop(); // the library's hand-back runs first
  }
}

@Module({})
export class BorrowedInstanceApp {
  static register(url: string, schema: string): DynamicModule {
    return {
      module: BorrowedInstanceApp,
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url, schema }),
        AppPgBossModule.forRoot(url, `${schema}_boss`),
        CheckpointModule.forRootAsync({
          inject: [PgBoss], // the app's instance; or forRoot({ bossToken: PgBoss })
          useFactory: (boss: PgBoss) => ({ schema, boss }),
        }),
      ],
      providers: [BorrowedInstanceScreening],
    };
  }
}

@Injectable()
export class BorrowedInstanceScreening {
  constructor(@Inject(PgBoss) private readonly boss: PgBoss) {} // the app's, as before

  async start(ids: number[]): Promise<string | null> {
    return this.boss.send('screening-borrowed', { ids });
  }

  @Checkpointed({ queue: 'screening-borrowed', batchSize: 50, transactional: true })
  async screen(
    job: Job<ScreeningInput>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<{ screened: number }> {
    return screenItems(job, ctx);
  }
}
// #endregion borrowed-instance
