import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CheckpointModule } from '../src/index.js';
import { Decision } from './screening.entities.js';
import { ScreeningService } from './screening.service.js';

export interface DemoModuleOptions {
  url: string;
  schema: string;
  /** Create the demo's own tables (the first process only; workers find them). */
  synchronize: boolean;
  /** Work the screening queue (default true); false for a process that only manages runs. */
  works?: boolean;
}

/** The demo application: TypeORM, the checkpoint module with pg-boss, and the job. */
@Module({})
export class DemoModule {
  static register({ url, schema, synchronize, works = true }: DemoModuleOptions): DynamicModule {
    return {
      module: DemoModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url,
          schema,
          entities: [Decision],
          synchronize,
          extra: { max: 8 },
        }),
        CheckpointModule.forRoot({
          schema,
          boss: {
            connectionString: url,
            schema: `${schema}_boss`,
            max: 4,
            superviseIntervalSeconds: 2,
            monitorIntervalSeconds: 2,
          },
          shutdownTimeoutMs: 10_000,
        }),
      ],
      providers: works ? [ScreeningService] : [],
    };
  }
}
