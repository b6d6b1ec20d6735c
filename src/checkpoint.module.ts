import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { PgBoss } from 'pg-boss';
import type { DataSource } from 'typeorm';
import { CHECKPOINT_DATA_SOURCE, CHECKPOINT_OPTIONS } from './checkpoint.constants.js';
import { CheckpointExplorer } from './checkpoint.explorer.js';
import { CheckpointMetadataAccessor } from './checkpoint-metadata.accessor.js';
import { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN } from './checkpoint.module-definition.js';
import { resolveOptions, type ResolvedCheckpointOptions } from './checkpoint.options.js';
import { CheckpointRepository } from './checkpoint.repository.js';
import { CheckpointService } from './checkpoint.service.js';
import { CheckpointSession } from './checkpoint.session.js';
import { checkpointSql } from './checkpoint.sql.js';
import { CheckpointQueues, createBoss } from './boss/checkpoint-queues.js';
import { CheckpointRunner } from './checkpoint.runner.js';
import { runCheckpointMigrations } from './migrations/checkpoint.migrations.js';
import { FailedItemsService } from './items/failed-items.service.js';
import { CheckpointRuns } from './runs/runs.service.js';
import { CheckpointTelemetry } from './telemetry/checkpoint.telemetry.js';
import { CheckpointRetention } from './retention/checkpoint-retention.js';

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
      provide: CheckpointRepository,
      // Migrations run before anything can inject the service: no caller sees a missing table.
      useFactory: async (dataSource: DataSource, options: ResolvedCheckpointOptions) => {
        if (options.migrationsRun) {
          const runner = dataSource.createQueryRunner('master');
          try {
            await runCheckpointMigrations(runner, options.schema);
          } finally {
            await runner.release();
          }
        }
        return new CheckpointRepository(dataSource, checkpointSql(options.schema), options);
      },
      inject: [CHECKPOINT_DATA_SOURCE, CHECKPOINT_OPTIONS],
    },
    {
      provide: CheckpointSession,
      useFactory: (
        dataSource: DataSource,
        repository: CheckpointRepository,
        options: ResolvedCheckpointOptions,
      ) =>
        new CheckpointSession(dataSource, repository, {
          leaseTtlMs: options.leaseTtlMs,
          reconnectForMs: Math.max(options.leaseTtlMs, options.databaseOutageMs),
        }),
      inject: [CHECKPOINT_DATA_SOURCE, CheckpointRepository, CHECKPOINT_OPTIONS],
    },
    // Started after the DataSource (the repository waits for it and the migrations).
    { provide: PgBoss, useFactory: createBoss, inject: [CHECKPOINT_OPTIONS, CheckpointRepository] },
    CheckpointService,
    CheckpointRunner,
    CheckpointQueues,
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
    PgBoss,
    FailedItemsService,
    CheckpointRetention,
  ],
})
export class CheckpointModule extends ConfigurableModuleClass {}
