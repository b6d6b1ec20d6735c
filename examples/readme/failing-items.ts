import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  Checkpointed,
  type CheckpointContext,
} from 'nestjs-checkpoint';
import { Column, Entity, PrimaryColumn, type Repository } from 'typeorm';

@Entity()
export class Verdict {
  @PrimaryColumn() projectId!: string;
  @PrimaryColumn() abstractId!: string;
  @Column() include!: boolean;
}

export interface Abstract {
  id: string;
  text: string;
}

/** The model refused an abstract, or its answer did not parse: retrying will not help. */
export class RefusedError extends Error {}
/** HTTP 429 from the model's API: the same call passes a moment later. */
export class RateLimitError extends Error {}

/** The LLM client (an abstract class, so that it can be a provider token): one verdict each. */
export abstract class Classifier {
  abstract classify(
    items: Abstract[],
    signal: AbortSignal,
  ): Promise<Array<{ abstractId: string; include: boolean }>>;
}

@Injectable()
export class AbstractScreening {
  constructor(
    private readonly classifier: Classifier,
    @InjectRepository(Verdict) readonly verdicts: Repository<Verdict>,
  ) {}

  @Checkpointed({
    key: (projectId: string) => `screening:${projectId}`,
    batchSize: 50,
    transactional: true,
    retry: {
      limit: 5, // retries in a row, after the first failure
      backoff: { initialMs: 500, factor: 2, maxMs: 30_000, jitter: true },
      on: [RateLimitError], // error classes, or a predicate (error) => boolean
    },
    skip: {
      on: [RefusedError, SyntaxError],
      limit: { ratio: 0.02 }, // or { count: 20 }; no limit when left out
      ledgerValue: (item: Abstract) => item.id, // what the ledger keeps (default: the item, as JSON)
    },
  })
  async screen(
    projectId: string,
    abstracts: Abstract[],
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<void> {
    // The loop you already have. It runs again after a batch that failed (as on a resume).
    for await (const batch of ctx.batches(abstracts)) {
      const verdicts = await this.classifier.classify(batch.items, ctx.signal);
      await batch.manager.insert(
        Verdict,
        verdicts.map((verdict) => ({ ...verdict, projectId })),
      );
    }
  }
}
