import { Injectable, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  CheckpointModule,
  Checkpointed,
  type CheckpointContext,
} from 'nestjs-checkpoint';
import type { Job } from 'pg-boss';
import {
  Classifier,
  RateLimitError,
  RefusedError,
  Verdict,
  type Abstract,
} from './failing-items.js';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

@Injectable()
export class ScreeningWorker {
  constructor(private readonly classifier: Classifier) {}

  // The decorator names the errors (classes are code); the limits come from the module options.
  @Checkpointed({
    queue: 'screening',
    batchSize: 50,
    transactional: true,
    skip: { on: [RefusedError] },
  })
  async screen(
    job: Job<{ projectId: string; abstracts: Abstract[] }>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<void> {
    const { projectId, abstracts } = job.data;
    for await (const batch of ctx.batches(abstracts)) {
      const verdicts = await this.classifier.classify(batch.items, ctx.signal);
      await batch.manager.insert(
        Verdict,
        verdicts.map((verdict) => ({ ...verdict, projectId })),
      );
    }
  }
}

/** Your LLM client goes here. */
@Injectable()
export class ModelClassifier extends Classifier {
  classify(items: Abstract[]): Promise<Array<{ abstractId: string; include: boolean }>> {
    return Promise.resolve(items.map((item) => ({ abstractId: item.id, include: true })));
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url, autoLoadEntities: true }),
    TypeOrmModule.forFeature([Verdict]),
    CheckpointModule.forRoot({
      boss: { connectionString: url },
      queues: {
        // Per queue, by name. A field the decorator gives wins; these fill in the rest.
        screening: {
          retry: {
            limit: Number(process.env.SCREENING_RETRIES ?? 5),
            backoff: { initialMs: 500, maxMs: 30_000, jitter: true },
            on: [RateLimitError],
            replayTries: 2, // each replayed item twice after its batch spent its retries
          },
          skip: { limit: { ratio: Number(process.env.SCREENING_SKIP_RATIO ?? 0.02) } },
        },
      },
    }),
  ],
  providers: [ScreeningWorker, { provide: Classifier, useClass: ModelClassifier }],
})
export class ScreeningModule {}
