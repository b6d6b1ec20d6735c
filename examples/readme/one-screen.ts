import 'reflect-metadata';
import { Injectable, Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  CHECKPOINT_BOSS,
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  Checkpointed,
  CheckpointModule,
  CheckpointService,
  type CheckpointContext,
} from 'nestjs-checkpoint';
import type { Job, PgBoss } from 'pg-boss';
import { lastValueFrom } from 'rxjs';
import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

@Entity()
export class Decision {
  @PrimaryGeneratedColumn() id!: number;
  @Column() abstractId!: string;
  @Column() include!: boolean;
}

/** Stands in for the slow part (an LLM call, say). */
@Injectable()
export class Classifier {
  classify(ids: string[]): Promise<Array<Omit<Decision, 'id'>>> {
    return Promise.resolve(
      ids.map((abstractId) => ({ abstractId, include: abstractId.endsWith('7') })),
    );
  }
}

@Injectable()
export class ScreeningService {
  constructor(private readonly classifier: Classifier) {}

  /** The pg-boss worker of queue `screening`: key `screening:<job id>`, resumed after a crash. */
  @Checkpointed({ queue: 'screening', batchSize: 50, transactional: true })
  async screen(
    job: Job<{ ids: string[] }>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<number> {
    for await (const batch of ctx.batches(job.data.ids)) {
      const decisions = await this.classifier.classify(batch.items);
      await batch.manager.insert(Decision, decisions); // commits with the checkpoint, or not at all
    }
    return job.data.ids.length;
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url, autoLoadEntities: true, synchronize: true }),
    TypeOrmModule.forFeature([Decision]), // registers the entity that batch.manager writes
    CheckpointModule.forRoot({ schema: 'checkpoint', boss: { connectionString: url } }),
  ],
  providers: [Classifier, ScreeningService],
})
export class AppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(AppModule);
  app.enableShutdownHooks(); // Ctrl-C or a deploy: batches in flight commit, the job is handed back
  const ids = Array.from({ length: 20_000 }, (_, i) => `abstract-${i}`);
  const jobId = await app.get<PgBoss>(CHECKPOINT_BOSS).send('screening', { ids });
  // Progress from any process; it ends with the key's final state.
  const last = await lastValueFrom(app.get(CheckpointService).watch(`screening:${jobId}`));
  new Logger('Screening').log(`${last.state}: ${last.processedItems} of ${last.totalItems} items`);
  await app.close();
}

await main();
