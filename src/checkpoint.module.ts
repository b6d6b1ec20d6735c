import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { DataSource } from 'typeorm';
import {
  CHECKPOINT_BOSS,
  CHECKPOINT_DATA_SOURCE,
  CHECKPOINT_OPTIONS,
} from './checkpoint.constants.js';
import { CheckpointExplorer } from './checkpoint.explorer.js';
import { CheckpointMetadataAccessor } from './checkpoint-metadata.accessor.js';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN,
  OPTIONS_TYPE,
} from './checkpoint.module-definition.js';
import { resolveOptions, type ResolvedCheckpointOptions } from './checkpoint.options.js';
import { CheckpointRepository } from './checkpoint.repository.js';
import { CheckpointService } from './checkpoint.service.js';
import { CheckpointSession } from './checkpoint.session.js';
import { checkpointSql } from './checkpoint.sql.js';
import {
  CHECKPOINT_BOSS_HANDLE,
  CHECKPOINT_BOSS_SOURCE,
  createBoss,
  type BossHandle,
} from './boss/checkpoint-boss.js';
import { CheckpointJobs } from './boss/checkpoint-jobs.js';
import { CheckpointQueues } from './boss/checkpoint-queues.js';
import { CheckpointRunner } from './attempt/checkpoint.runner.js';
import { runCheckpointMigrations } from './migrations/checkpoint.migrations.js';
import { FailedItemsService } from './items/failed-items.service.js';
import { CheckpointRuns } from './runs/runs.service.js';
import { CheckpointTelemetry } from './telemetry/checkpoint.telemetry.js';
import { CheckpointRetention } from './retention/checkpoint-retention.js';
import {
  CHECKPOINT_CONNECTION,
  resolveConnectionMode,
  type ConnectionMode,
} from './session/connection-mode.js';

/**
 * Resumable batch work on PostgreSQL. `CheckpointModule.forRoot(options)` or
 * `forRootAsync({ imports, inject, useFactory | useClass | useExisting })`, beside
 * `TypeOrmModule.forRoot()`; `isGlobal` and `dataSource` (a DataSource name) are extras of both.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    { provide: CHECKPOINT_OPTIONS, useFactory: resolveOptions, inject: [MODULE_OPTIONS_TOKEN] },
    {
      provide: CHECKPOINT_CONNECTION,
      useFactory: resolveConnectionMode,
      inject: [CHECKPOINT_DATA_SOURCE, CHECKPOINT_OPTIONS],
    },
    {
      provide: CheckpointRepository,
      // Migrations run before anything can inject the service: no caller sees a missing table.
      useFactory: async (
        dataSource: DataSource,
        options: ResolvedCheckpointOptions,
        mode: ConnectionMode,
      ) => {
        if (options.migrationsRun) {
          const runner = dataSource.createQueryRunner('master');
          try {
            await runCheckpointMigrations(runner, options.schema, {
              concurrent: mode.pooling !== 'transaction',
            });
          } finally {
            await runner.release();
          }
        }
        const sql = checkpointSql(options.schema);
        return new CheckpointRepository(dataSource, sql, options, mode.pooling);
      },
      inject: [CHECKPOINT_DATA_SOURCE, CHECKPOINT_OPTIONS, CHECKPOINT_CONNECTION],
    },
    {
      provide: CheckpointSession,
      useFactory: (
        dataSource: DataSource,
        repository: CheckpointRepository,
        options: ResolvedCheckpointOptions,
        mode: ConnectionMode,
      ) =>
        new CheckpointSession(
          dataSource,
          repository,
          {
            leaseTtlMs: options.leaseTtlMs,
            reconnectForMs: Math.max(options.leaseTtlMs, options.databaseOutageMs),
          },
          mode,
        ),
      inject: [
        CHECKPOINT_DATA_SOURCE,
        CheckpointRepository,
        CHECKPOINT_OPTIONS,
        CHECKPOINT_CONNECTION,
      ],
    },
    // Started after the DataSource (the repository waits for it and the migrations).
    {
      provide: CHECKPOINT_BOSS_HANDLE,
      useFactory: (options: ResolvedCheckpointOptions, _: unknown, source: unknown) =>
        createBoss(options, source ?? undefined),
      inject: [
        CHECKPOINT_OPTIONS,
        CheckpointRepository,
        { token: CHECKPOINT_BOSS_SOURCE, optional: true },
      ],
    },
    {
      provide: CHECKPOINT_BOSS,
      useFactory: (handle: BossHandle) => handle.boss,
      inject: [CHECKPOINT_BOSS_HANDLE],
    },
    CheckpointService,
    CheckpointRunner,
    CheckpointQueues,
    CheckpointJobs,
    CheckpointMetadataAccessor,
    CheckpointExplorer,
    FailedItemsService,
    CheckpointRuns,
    CheckpointTelemetry,
    CheckpointRetention,
  ],
  exports: [
    CheckpointService,
    CheckpointQueues,
    CheckpointRuns,
    CheckpointJobs,
    FailedItemsService,
    CheckpointRetention,
  ],
})
export class CheckpointModule extends ConfigurableModuleClass {
  /**
   * `forRoot()` takes its options, or none (every default; no pg-boss). The module's PgBoss is
   * exported under `CHECKPOINT_BOSS` only when there is one: never under the `PgBoss` class,
   * which belongs to the application or its wrapper.
   */
  static override forRoot(options: typeof OPTIONS_TYPE = {}): DynamicModule {
    const module = super.forRoot(options);
    return options.boss === undefined && options.bossToken === undefined
      ? module
      : exportBoss(module);
  }

  /**
   * `forRootAsync({ imports, inject, useFactory | useClass | useExisting })`. The options are
   * known only once the factory ran, so `CHECKPOINT_BOSS` is exported here in any case; it holds
   * null when the factory gave no `boss`. Borrow the application's instance in one line with
   * `inject: [PgBoss], useFactory: (boss: PgBoss) => ({ boss })`, or with the `bossToken` extra.
   */
  static override forRootAsync(options: typeof ASYNC_OPTIONS_TYPE): DynamicModule {
    return exportBoss(super.forRootAsync(options));
  }
}

function exportBoss(module: DynamicModule): DynamicModule {
  return { ...module, exports: [...(module.exports ?? []), CHECKPOINT_BOSS] };
}
