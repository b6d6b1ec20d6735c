import {
  ConsoleLogger,
  type DynamicModule,
  type INestApplicationContext,
  type LoggerService,
  type Provider,
  type Type,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Logger as TypeOrmLogger } from 'typeorm';
import { CheckpointModule, type CheckpointModuleOptions } from '../../src/index.js';
import { DATABASE_URL } from './database.js';

export interface TestAppOptions {
  schema: string;
  checkpoint?: Partial<CheckpointModuleOptions>;
  providers?: Provider[];
  imports?: Array<Type | DynamicModule>;
  /** Entities of the test's own tables (in the test schema). */
  entities?: Type[];
  logger?: TypeOrmLogger;
  /** TypeORM pool size (default 10). */
  poolSize?: number;
  /** Another database URL than DATABASE_URL (a proxy in front of it, a server the test started). */
  url?: string;
  /** The checkpoint module as imported (default `CheckpointModule.forRoot()` with `checkpoint`). */
  checkpointModule?: DynamicModule;
  /** A Nest logger to receive the application's log lines (default: errors and warnings). */
  loggerService?: LoggerService;
}

/**
 * Boots a fixture Nest application the way a user would: TypeOrmModule.forRoot() on the real
 * database, and CheckpointModule.forRoot() in the test's own schema.
 */
export async function createTestApp(options: TestAppOptions): Promise<INestApplicationContext> {
  // The testing module's own logger drops everything but errors: LOG_LEVELS=all prints it all.
  // Without a loggerService, the same logger also hears what providers log while the module
  // compiles (the migrations' lines), which Nest's testing logger would drop.
  const bootLogger =
    options.loggerService === undefined
      ? new ConsoleLogger({
          logLevels: process.env.LOG_LEVELS === 'all' ? undefined : ['error', 'warn'],
        })
      : undefined;
  const builder = Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: options.url ?? DATABASE_URL,
        schema: options.schema,
        entities: options.entities ?? [],
        synchronize: (options.entities?.length ?? 0) > 0,
        logger: options.logger,
        logging: options.logger === undefined ? false : ['query', 'error'],
        extra: { max: options.poolSize ?? 10 },
      }),
      options.checkpointModule ??
        CheckpointModule.forRoot({
          schema: options.schema,
          ...optionsFromEnvironment(),
          ...options.checkpoint,
        }),
      ...(options.imports ?? []),
    ],
    providers: options.providers ?? [],
  });
  if (bootLogger !== undefined) builder.setLogger(bootLogger);
  const moduleRef = await builder.compile();
  // A library has no HTTP layer: the testing module itself is the application context and
  // runs every lifecycle hook (init, bootstrap, shutdown), as NestFactory's would. Fixtures that
  // must react to SIGTERM call enableShutdownHooks() themselves.
  moduleRef.useLogger(options.loggerService ?? (bootLogger as ConsoleLogger));
  try {
    await moduleRef.init();
  } catch (error) {
    await moduleRef.close();
    throw error;
  }
  return moduleRef;
}

/**
 * Module options a parent test gives a fixture process (JSON in CHECKPOINT_OPTIONS): the
 * connection set-up of the pooler tests, a short lease.
 */
function optionsFromEnvironment(): Partial<CheckpointModuleOptions> {
  const json = process.env.CHECKPOINT_OPTIONS;
  return json === undefined ? {} : (JSON.parse(json) as Partial<CheckpointModuleOptions>);
}

/** A TypeORM logger that counts the statements it sees, to prove one statement per write. */
export class CountingLogger implements TypeOrmLogger {
  readonly queries: string[] = [];
  logQuery(query: string): void {
    this.queries.push(query);
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
  /** The statements seen while `action` ran, with transaction control left out. */
  async during(action: () => Promise<unknown>): Promise<string[]> {
    const start = this.queries.length;
    await action();
    return this.queries.slice(start);
  }
}

/**
 * The body of a worker fixture: `job` works its queue with a pg-boss of the library's own, polled
 * every second; the process prints `ready <pid>` once it is up and stops on SIGTERM.
 */
export async function serveWorker(
  job: Type,
  poolSize: number,
  checkpoint: Partial<CheckpointModuleOptions> = {},
): Promise<void> {
  const schema = process.env.SCHEMA as string;
  const app = await createTestApp({
    schema,
    providers: [job],
    poolSize,
    checkpoint: {
      boss: {
        connectionString: DATABASE_URL,
        schema: `${schema}_boss`,
        max: 4,
        superviseIntervalSeconds: 1,
        monitorIntervalSeconds: 1,
      },
      shutdownTimeoutMs: 10_000,
      ...checkpoint,
    },
  });
  app.enableShutdownHooks();
  process.stdout.write(`ready ${process.pid}\n`);
}
