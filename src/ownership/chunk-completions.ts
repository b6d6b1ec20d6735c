import type { EntityManager } from 'typeorm';

/**
 * Called when a key that is a chunk of a run completes: inside the completing transaction when
 * the completion had one (`manager`), right after the completing statement otherwise.
 * @internal the runs room subscribes to it
 */
export type ChunkCompletionListener = (
  completed: { key: string; runId: string },
  manager: EntityManager | undefined,
) => Promise<void>;

/**
 * The listeners to chunk completions (the runs room completes a run with its last chunk).
 * @internal
 */
export class ChunkCompletions {
  private readonly chunkCompletionListeners = new Set<ChunkCompletionListener>();

  /** Subscribes `listener`; returns the unsubscribe. */
  on(listener: ChunkCompletionListener): () => void {
    this.chunkCompletionListeners.add(listener);
    return () => this.chunkCompletionListeners.delete(listener);
  }

  /** Calls every listener in turn, inside the completing transaction when there is one. */
  async completed(
    completed: { key: string; runId: string },
    manager: EntityManager | undefined,
  ): Promise<void> {
    for (const listener of this.chunkCompletionListeners) {
      await listener(completed, manager);
    }
  }
}
