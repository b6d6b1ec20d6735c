import {
  Inject,
  Injectable,
  Module,
  type DynamicModule,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import type { PgBoss } from 'pg-boss';
import { CheckpointModule } from '../checkpoint.module.js';
import { CHECKPOINT_BOSS } from '../checkpoint.constants.js';
import type { CheckpointModuleOptions } from '../checkpoint.options.js';
import { CheckpointQueues } from '../boss/checkpoint-queues.js';
import { CheckpointTesting } from './checkpoint-testing.service.js';
import { testSchemaName } from './test-database.js';
import { TestSchema } from './test-schema.js';

/** Options of `CheckpointTestingModule.forRoot()`. */
export interface CheckpointTestingOptions {
  /** The application's entities: their tables are created in the testing schema. */
  entities?: TypeOrmModuleOptions['entities'];
  /** More options of the checkpoint module (its schema and pg-boss are the testing module's). */
  checkpoint?: Omit<CheckpointModuleOptions, 'schema' | 'boss'>;
  /**
   * Start pg-boss in a schema beside the testing schema (default true): `@Checkpointed({ queue })`
   * methods and runs need it. Its workers do not poll; `drain(queue)` runs the jobs.
   */
  boss?: boolean;
  /** TypeORM's pool size (default 5). */
  poolSize?: number;
}

/** Stops the module's pg-boss workers once they started: in tests, `drain()` runs the jobs. */
@Injectable()
class TestLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(
    private readonly schema: TestSchema,
    private readonly queues: CheckpointQueues,
    @Inject(CHECKPOINT_BOSS) private readonly boss: PgBoss | null,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const boss = this.boss;
    if (boss === null) return;
    // The checkpoint module (global, so bootstrapped before this one) started them.
    await Promise.all(this.queues.queues.map((queue) => boss.offWork(queue)));
  }

  /** After pg-boss stopped (before shutdown), before TypeORM closes its idle pool. */
  async onApplicationShutdown(): Promise<void> {
    await this.schema.drop();
  }
}

/**
 * The test's database for `Test.createTestingModule()`: TypeORM and the checkpoint module (with
 * pg-boss) on a fresh schema of a real PostgreSQL (`DATABASE_URL`, or an embedded server started
 * once per test process), migrated at `init()` and dropped at `close()`; and `CheckpointTesting`
 * (crash injection, `assertResumable`, `drain`). TypeORM's and the checkpoint module's providers
 * are global: the application's providers inject the DataSource and the checkpoint services as
 * usual.
 *
 * @example
 * ```ts
 * const moduleRef = await Test.createTestingModule({
 *   imports: [CheckpointTestingModule.forRoot({ entities: [Decision] })],
 *   providers: [ScreeningService],
 * }).compile();
 * ```
 */
@Module({})
export class CheckpointTestingModule {
  /** A fresh schema, the checkpoint module and (by default) pg-boss on it, for one testing module. */
  static forRoot(options: CheckpointTestingOptions = {}): DynamicModule {
    const test = new TestSchema(testSchemaName());
    return {
      module: CheckpointTestingModule,
      imports: [
        TypeOrmModule.forRootAsync({
          useFactory: async () => ({
            type: 'postgres',
            url: await test.open(),
            schema: test.name,
            entities: options.entities ?? [],
            synchronize: true,
            // Unqualified names in the test's own SQL (a snapshot, say) find the testing schema.
            extra: { max: options.poolSize ?? 5, options: `-c search_path=${test.name}` },
          }),
        }),
        CheckpointModule.forRootAsync({
          isGlobal: true,
          useFactory: async () => ({
            ...options.checkpoint,
            schema: test.name,
            ...(options.boss === false
              ? {}
              : {
                  boss: {
                    connectionString: await test.open(),
                    schema: test.bossSchema,
                    max: 3,
                    // Nothing polls in tests; pg-boss's maintenance only.
                    superviseIntervalSeconds: 60,
                  },
                }),
          }),
        }),
      ],
      providers: [{ provide: TestSchema, useValue: test }, CheckpointTesting, TestLifecycle],
      exports: [CheckpointTesting],
    };
  }
}
