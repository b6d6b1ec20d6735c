import { Observable } from 'rxjs';
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import { CheckpointStoreError } from '../checkpoint.errors.js';
import type { CheckpointProgress } from '../checkpoint.interfaces.js';
import type { CheckpointRepository } from '../checkpoint.repository.js';
import type { CheckpointSession } from '../checkpoint.session.js';
import { assertKey } from '../checkpoint.validation.js';
import { findRow, toProgress } from './checkpoint-reads.js';

/** States after which a key changes no more on its own: watch() completes on them. */
const FINAL_STATES: ReadonlySet<string> = new Set([
  CHECKPOINT_STATES.completed,
  CHECKPOINT_STATES.cancelled,
]);
/** How long after the last change watch() reads once more. */
const WATCH_TRAILING_READ_MS = 250;

/**
 * Progress as it changes, in any process, over the session's LISTEN (see CheckpointSession).
 * @internal the façade's watch() and changes()
 */
export class CheckpointWatch {
  constructor(
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
  ) {}

  /** Progress of `key`: the original four fields and rate, ETA and state; null when none. */
  async getProgress(key: string): Promise<CheckpointProgress | null> {
    const row = await findRow(this.repository, 'progress', key);
    return row === undefined ? null : toProgress(row);
  }

  /** See CheckpointService.watch. */
  watch(key: string): Observable<CheckpointProgress> {
    assertKey(key);
    return new Observable<CheckpointProgress>((subscriber) => {
      let closed = false;
      let busy = false;
      let again = false;
      let lastSeen = '';
      let trailing: NodeJS.Timeout | undefined;
      let unsubscribe: (() => void) | undefined;
      const refresh = async (): Promise<void> => {
        if (busy) {
          again = true;
          return;
        }
        busy = true;
        try {
          do {
            again = false;
            const progress = await this.getProgress(key);
            if (closed || progress === null) continue;
            const seen = `${progress.lastUpdate.getTime()}:${progress.processedItems}:${progress.skippedItems}:${progress.state}`;
            if (seen === lastSeen) continue;
            lastSeen = seen;
            subscriber.next(progress);
            if (FINAL_STATES.has(progress.state)) {
              closed = true;
              subscriber.complete();
              return;
            }
          } while (again && !closed);
        } catch (error) {
          closed = true;
          subscriber.error(
            error instanceof CheckpointStoreError
              ? error
              : new CheckpointStoreError('watch', key, error),
          );
        } finally {
          busy = false;
        }
      };
      const changed = () => {
        void refresh();
        // Once more a moment after the last change: a notification can overtake its commit.
        clearTimeout(trailing);
        trailing = setTimeout(() => void refresh(), WATCH_TRAILING_READ_MS).unref();
      };
      // Notifications sent while the session was being replaced are lost: read again.
      const stopRestore = this.session.onRestore(changed);
      this.session
        .subscribe((changedKey) => {
          if (changedKey === key) changed();
        })
        .then(
          (stop) => {
            unsubscribe = stop;
            if (closed) stop();
            else void refresh();
          },
          (error: unknown) => {
            closed = true;
            subscriber.error(
              error instanceof CheckpointStoreError
                ? error
                : new CheckpointStoreError('watch', key, error),
            );
          },
        );
      return () => {
        closed = true;
        clearTimeout(trailing);
        stopRestore();
        unsubscribe?.();
      };
    });
  }

  /** See CheckpointService.changes. */
  changes(listening?: () => void): Observable<string> {
    return new Observable<string>((subscriber) => {
      let closed = false;
      let stop: (() => void) | undefined;
      this.session
        .subscribe((key) => subscriber.next(key))
        .then(
          (unsubscribe) => {
            stop = unsubscribe;
            if (closed) unsubscribe();
            else listening?.();
          },
          (error: unknown) => subscriber.error(error),
        );
      return () => {
        closed = true;
        stop?.();
      };
    });
  }
}
