import { CheckpointStoreError, isConnectionFailure } from '../checkpoint.errors.js';
import { messages } from '../checkpoint.messages.js';
import type { CheckpointRepository } from '../checkpoint.repository.js';

/** What the health checks need of the process's checkpoint session (CheckpointSession has it). */
export interface SessionProbe {
  /** Why the session was lost, while it is. */
  readonly lost: string | undefined;
  identity(): Promise<unknown>;
  ping(): Promise<unknown>;
}

/**
 * Whether the database and this process's checkpoint session answer, and waiting until they do.
 * @internal the façade's sessionLost, sessionProblem and waitForDatabase
 */
export class CheckpointSessionHealth {
  constructor(
    private readonly repository: CheckpointRepository,
    private readonly session: SessionProbe,
  ) {}

  /** See CheckpointService.waitForDatabase. */
  async waitForDatabase(withinMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + withinMs;
    let delay = 100;
    for (;;) {
      try {
        await this.repository.run('ping', undefined, this.repository.sql.ping());
        await this.session.identity();
        return;
      } catch (error) {
        if (!isConnectionFailure(error) || Date.now() + delay > deadline || signal?.aborted) {
          throw new CheckpointStoreError(
            'wait for the database',
            undefined,
            new Error(messages.databaseUnavailable(withinMs, (error as Error).message), {
              cause: error,
            }),
          );
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(1000, delay * 2);
      }
    }
  }

  /** Why the session was lost, while it is (no round trip). */
  get sessionLost(): string | undefined {
    return this.session.lost;
  }

  /** See CheckpointService.sessionProblem. */
  async sessionProblem(): Promise<string | null> {
    const lost = this.session.lost;
    if (lost === undefined) return null;
    try {
      await this.session.ping();
      return null;
    } catch {
      return lost;
    }
  }
}
