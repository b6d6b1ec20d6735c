import { Logger } from '@nestjs/common';

/** An attempt began: a claim that did not fail. */
export interface AttemptStartedEvent {
  key: string;
  epoch: number;
  attempt: number;
  resumeFrom: number;
  /** Set when the claim took the key from an attempt that never ended (crashed, superseded). */
  takeover: boolean;
}

/** An attempt ended: completed, failed, or handed back (released, paused, cancelled). */
export interface AttemptEndedEvent {
  key: string;
  epoch: number;
  outcome: 'completed' | 'failed' | 'released' | 'paused' | 'cancelled';
  error?: unknown;
}

/** A batch of the batch loop. `committed` and `durationMs` are set when it ends. */
export interface BatchEvent {
  key: string;
  epoch: number;
  index: number;
  startIndex: number;
  items: number;
  mode: string;
  /** Whether committing it completes a batch (an item replayed alone may not). */
  endsBatch: boolean;
  committed?: boolean;
  durationMs?: number;
}

/**
 * What the core reports to the rooms that watch it (telemetry). Every method is optional and
 * synchronous; an observer that throws is logged and never disturbs the work.
 */
export interface CheckpointObserver {
  attemptStarted?(event: AttemptStartedEvent): void;
  attemptEnded?(event: AttemptEndedEvent): void;
  batchStarted?(event: BatchEvent): void;
  batchEnded?(event: BatchEvent): void;
  itemsSkipped?(event: { key: string; epoch: number; count: number; endsBatch: boolean }): void;
  /** A write of a superseded attempt changed nothing. */
  fenced?(event: { key: string; epoch: number }): void;
  /** A claim was refused: another live attempt owns the key. */
  conflict?(event: { key: string }): void;
  /** A dead worker's attempt was given up so that its job runs again (the reaper). */
  reaped?(event: { key: string; epoch: number }): void;
}

type Events = {
  [K in keyof CheckpointObserver]-?: Parameters<NonNullable<CheckpointObserver[K]>>[0];
};

/** The observers registered with the core; empty (and free) until a room adds one. */
export class CheckpointObservers {
  private readonly logger = new Logger('Checkpoint');
  private readonly observers = new Set<CheckpointObserver>();

  /** Registers an observer; returns the function that removes it. */
  add(observer: CheckpointObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  emit<K extends keyof Events>(name: K, event: Events[K]): void {
    for (const observer of this.observers) {
      try {
        (observer[name] as ((event: Events[K]) => void) | undefined)?.call(observer, event);
      } catch (error) {
        this.logger.warn(`an observer failed on ${name}: ${(error as Error).message}`);
      }
    }
  }
}
