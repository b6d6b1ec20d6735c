// The command's Nest application context: TypeORM and CheckpointModule (no migrations at
// bootstrap; the application's pg-boss only for commands on runs) on DATABASE_URL, and the
// library's services called through it. Loaded only once the command line is known to be good,
// so that --help and a bad argument answer fast.
import 'reflect-metadata';
import { Logger, Module, type DynamicModule, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { CheckpointModule } from '../checkpoint.module.js';
import { CheckpointService } from '../checkpoint.service.js';
import { FailedItemsService } from '../items/failed-items.service.js';
import { runCheckpointMigrations } from '../migrations/checkpoint.migrations.js';
import { CheckpointRuns } from '../runs/runs.service.js';
import { needsBoss, type CliArgs } from './cli.args.js';
import { runCommand, type CliResult } from './cli.commands.js';
import { cliMessages } from './cli.messages.js';

/** Warnings of the library go to stderr; its errors reach the command, which says them once. */
class StderrLogger implements LoggerService {
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    process.stderr.write(`warning: ${String(message)}\n`);
  }
}

@Module({})
class CliModule {
  static forDatabase(url: string, args: CliArgs): DynamicModule {
    return {
      module: CliModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url,
          retryAttempts: 0,
          extra: { max: 2, connectionTimeoutMillis: 10_000 },
        }),
        CheckpointModule.forRoot({
          schema: args.schema,
          migrationsRun: false,
          // The application's pg-boss, used and never changed: no maintenance, no schedules, no
          // migration, no row in its instance registry; the module starts and stops it.
          boss: needsBoss(args)
            ? {
                connectionString: url,
                schema: args.bossSchema,
                max: 1,
                supervise: false,
                schedule: false,
                migrate: false,
                registerInstance: false,
              }
            : undefined,
        }),
      ],
    };
  }
}

async function migrate(url: string, schema: string): Promise<CliResult> {
  const dataSource = new DataSource({ type: 'postgres', url, extra: { max: 1 } });
  await dataSource.initialize();
  try {
    const runner = dataSource.createQueryRunner('master');
    try {
      const applied = await runCheckpointMigrations(runner, schema);
      return { value: { schema, applied }, lines: [cliMessages.migrated(applied)] };
    } finally {
      await runner.release();
    }
  } finally {
    await dataSource.destroy();
  }
}

/** Runs a good command line against the database. */
export async function execute(args: CliArgs, url: string): Promise<CliResult> {
  // The library's own loggers too (the migration runner's): stdout carries only the answer.
  Logger.overrideLogger(new StderrLogger());
  if (args.command === 'migrate') return migrate(url, args.schema);
  const app = await NestFactory.createApplicationContext(CliModule.forDatabase(url, args), {
    logger: new StderrLogger(),
    abortOnError: false,
  });
  try {
    return await runCommand(args, {
      checkpoints: app.get(CheckpointService),
      runs: app.get(CheckpointRuns),
      failedItems: app.get(FailedItemsService),
    });
  } finally {
    await app.close();
  }
}
