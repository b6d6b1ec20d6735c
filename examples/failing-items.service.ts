// The README's "Items that fail" example, type-checked with the rest of examples/.
import { Injectable } from '@nestjs/common';
import {
  CheckpointCtx,
  Checkpointed,
  FailedItemsService,
  type CheckpointContext,
} from '../src/index.js';
import { Decision } from './screening.entities.js';

/** The model refused an abstract, or its answer did not parse: retrying will not help. */
export class RefusedError extends Error {}
/** HTTP 429 from the model's API: the same call passes a moment later. */
export class RateLimitError extends Error {}

interface Abstract {
  id: string;
  text: string;
}

/** The LLM client (an abstract class, so that it can be a provider token): one verdict each. */
export abstract class Classifier {
  abstract classify(
    items: Abstract[],
    signal: AbortSignal,
  ): Promise<Array<{ id: string; include: boolean }>>;
}

@Injectable()
export class AbstractScreening {
  constructor(
    private readonly classifier: Classifier,
    private readonly failedItems: FailedItemsService,
  ) {}

  @Checkpointed({
    key: (projectId: string) => `screening:${projectId}`,
    batchSize: 50,
    transactional: true,
    retry: {
      limit: 5,
      backoff: { initialMs: 500, factor: 2, maxMs: 30_000, jitter: true },
      on: [RateLimitError],
    },
    skip: {
      on: [RefusedError, SyntaxError],
      limit: { ratio: 0.02 }, // more than 2% of the abstracts failing fails the attempt
      ledgerValue: (item: Abstract) => item.id, // the ledger keeps the id, not the text
    },
  })
  async screen(
    projectId: string,
    abstracts: Abstract[],
    @CheckpointCtx() ctx?: CheckpointContext,
  ): Promise<void> {
    const context = ctx as CheckpointContext;
    // Runs again after a batch that failed (as on a resume): keep it free of side effects.
    for await (const batch of context.batches(abstracts)) {
      const verdicts = await this.classifier.classify(batch.items, context.signal);
      await batch.manager.insert(
        Decision,
        verdicts.map((verdict) => ({
          runId: projectId,
          item: Number(verdict.id),
          verdict: verdict.include ? ('include' as const) : ('exclude' as const),
          attempt: context.attempt,
        })),
      );
    }
  }

  /** After fixing the prompt: run only the abstracts in the ledger again. */
  async retryFailed(projectId: string, abstracts: Abstract[]): Promise<number> {
    const { items } = await this.failedItems.redrive(`screening:${projectId}`);
    if (items > 0) await this.screen(projectId, abstracts);
    return items;
  }
}
