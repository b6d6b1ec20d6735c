// Boots the bench's Nest application the way a user's application boots: TypeOrmModule.forRoot()
// on the real database, CheckpointModule.forRoot() beside it, and the decorated provider.
import 'reflect-metadata';
import type { Provider, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type Logger as TypeOrmLogger } from 'typeorm';
import { CheckpointModule, CheckpointService, type CheckpointModuleOptions } from '../src/index.js';
import { BenchEffect, BenchJobs } from './jobs.js';

export interface BenchAppOptions {
  url: string;
  schema: string;
  /**
   * TypeORM's pool size. The library keeps one connection for its session (leases and
   * notifications) and borrows one per statement, so N concurrent writers need N + 1.
   */
  poolSize: number;
  /** Sees every statement TypeORM sends (used to count statements per batch). */
  logger?: TypeOrmLogger;
  /** pg's application_name of the pool's connections, so that the bench can count them. */
  applicationName?: string;
  /** Closes pooled connections idle this long (pg's default, 10 s, when absent). */
  idleTimeoutMs?: number;
  /** Providers a section adds beside BenchJobs (its own decorated jobs). */
  providers?: Provider[];
  /** CheckpointModule options beside the schema (pg-boss, lease TTL). */
  checkpoint?: Omit<CheckpointModuleOptions, 'schema'>;
}

export interface BenchApp {
  service: CheckpointService;
  jobs: BenchJobs;
  dataSource: DataSource;
  /** A provider of the application (one of `providers`). */
  get<T>(type: Type<T>): T;
  close(): Promise<void>;
}

export async function bootApp(options: BenchAppOptions): Promise<BenchApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: options.url,
        schema: options.schema,
        entities: [BenchEffect],
        // The bench creates its tables itself (database.ts); TypeORM must not alter anything.
        synchronize: false,
        logger: options.logger,
        applicationName: options.applicationName,
        extra: { max: options.poolSize, idleTimeoutMillis: options.idleTimeoutMs },
      }),
      CheckpointModule.forRoot({ ...options.checkpoint, schema: options.schema }),
    ],
    providers: [BenchJobs, ...(options.providers ?? [])],
  }).compile();
  moduleRef.useLogger(['error', 'warn']);
  try {
    await moduleRef.init();
  } catch (error) {
    await moduleRef.close();
    throw error;
  }
  return {
    service: moduleRef.get(CheckpointService),
    jobs: moduleRef.get(BenchJobs),
    dataSource: moduleRef.get(DataSource),
    get: (type) => moduleRef.get(type),
    close: () => moduleRef.close(),
  };
}
