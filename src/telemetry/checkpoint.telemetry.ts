import { Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import {
  context,
  metrics,
  SpanStatusCode,
  trace,
  type Counter,
  type Histogram,
  type Span,
} from '@opentelemetry/api';
import type { CheckpointObserver } from '../checkpoint.observers.js';
import { CheckpointService } from '../checkpoint.service.js';

/** Name and version under which the library's meter and tracer report. */
export const CHECKPOINT_INSTRUMENTATION = 'nestjs-checkpoint';

interface Instruments {
  items: Counter;
  batches: Counter;
  batchDuration: Histogram;
  skipped: Counter;
  fenced: Counter;
  conflicts: Counter;
  takeovers: Counter;
  attempts: Counter;
}

/**
 * Metrics and spans through `@opentelemetry/api`: a no-op until the application installs an
 * OpenTelemetry SDK (install it before the application starts: instruments are made at startup).
 *
 * Metrics: `checkpoint.items.processed` and `checkpoint.batches.processed` (committed only;
 * a skipped item counts in `checkpoint.items.skipped`, not as processed),
 * `checkpoint.batch.duration` (ms), `checkpoint.items.skipped`, `checkpoint.claims.fenced` (writes
 * of a superseded attempt), `checkpoint.claims.conflicts` (claims refused: a live owner),
 * `checkpoint.takeovers` (`reason`: `crashed` when a claim took a key whose attempt never ended,
 * `reaped` when a dead worker's job was handed back), `checkpoint.attempts` (`outcome`).
 * Spans: `checkpoint.attempt` from claim to its end, `checkpoint.batch` per batch inside it.
 */
@Injectable()
export class CheckpointTelemetry implements OnModuleInit, OnModuleDestroy {
  private remove?: () => void;
  private readonly attemptSpans = new Map<string, Span>();
  private readonly batchSpans = new Map<string, Span>();

  constructor(private readonly service: CheckpointService) {}

  onModuleInit(): void {
    const meter = metrics.getMeter(CHECKPOINT_INSTRUMENTATION);
    const instruments: Instruments = {
      items: meter.createCounter('checkpoint.items.processed', {
        description: 'Items whose batch committed with its checkpoint',
        unit: '{item}',
      }),
      batches: meter.createCounter('checkpoint.batches.processed', {
        description: 'Batches committed with their checkpoint',
        unit: '{batch}',
      }),
      batchDuration: meter.createHistogram('checkpoint.batch.duration', {
        description: 'Time from taking a batch to its commit (or rollback)',
        unit: 'ms',
      }),
      skipped: meter.createCounter('checkpoint.items.skipped', {
        description: 'Items isolated into the failed-item ledger',
        unit: '{item}',
      }),
      fenced: meter.createCounter('checkpoint.claims.fenced', {
        description: 'Writes refused because a newer attempt owns the key',
      }),
      conflicts: meter.createCounter('checkpoint.claims.conflicts', {
        description: 'Claims refused because another live attempt owns the key',
      }),
      takeovers: meter.createCounter('checkpoint.takeovers', {
        description: 'Keys taken from attempts that never ended',
      }),
      attempts: meter.createCounter('checkpoint.attempts', {
        description: 'Attempts that ended, by outcome',
      }),
    };
    this.remove = this.service.observers.add(this.observer(instruments));
  }

  onModuleDestroy(): void {
    this.remove?.();
    for (const span of [...this.batchSpans.values(), ...this.attemptSpans.values()]) span.end();
    this.batchSpans.clear();
    this.attemptSpans.clear();
  }

  private observer(instruments: Instruments): CheckpointObserver {
    const tracer = trace.getTracer(CHECKPOINT_INSTRUMENTATION);
    const id = (key: string, epoch: number) => `${epoch}:${key}`;
    return {
      attemptStarted: (event) => {
        if (event.takeover) instruments.takeovers.add(1, { reason: 'crashed' });
        const span = tracer.startSpan('checkpoint.attempt', {
          attributes: {
            'checkpoint.key': event.key,
            'checkpoint.epoch': event.epoch,
            'checkpoint.attempt': event.attempt,
            'checkpoint.resume_from': event.resumeFrom,
            'checkpoint.takeover': event.takeover,
          },
        });
        this.attemptSpans.get(id(event.key, event.epoch))?.end();
        this.attemptSpans.set(id(event.key, event.epoch), span);
      },
      attemptEnded: (event) => {
        instruments.attempts.add(1, { outcome: event.outcome });
        const span = this.attemptSpans.get(id(event.key, event.epoch));
        if (span === undefined) return;
        this.attemptSpans.delete(id(event.key, event.epoch));
        span.setAttribute('checkpoint.outcome', event.outcome);
        if (event.outcome === 'failed') {
          span.setStatus({
            code: SpanStatusCode.ERROR,
            message: event.error instanceof Error ? event.error.message : String(event.error),
          });
        }
        span.end();
      },
      batchStarted: (event) => {
        const parent = this.attemptSpans.get(id(event.key, event.epoch));
        // An attempt nobody records (no OpenTelemetry SDK, or sampled out) gets no batch spans:
        // they would not be recorded either, and a span per batch costs the batch loop its CPU.
        if (parent !== undefined && !parent.isRecording()) return;
        const span = tracer.startSpan(
          'checkpoint.batch',
          {
            attributes: {
              'checkpoint.key': event.key,
              'checkpoint.batch.index': event.index,
              'checkpoint.batch.start_index': event.startIndex,
              'checkpoint.batch.items': event.items,
              'checkpoint.batch.mode': event.mode,
            },
          },
          parent === undefined ? context.active() : trace.setSpan(context.active(), parent),
        );
        this.batchSpans.get(id(event.key, event.epoch))?.end();
        this.batchSpans.set(id(event.key, event.epoch), span);
      },
      batchEnded: (event) => {
        if (event.durationMs !== undefined) instruments.batchDuration.record(event.durationMs);
        if (event.committed === true) {
          instruments.items.add(event.items);
          if (event.endsBatch) instruments.batches.add(1);
        }
        const span = this.batchSpans.get(id(event.key, event.epoch));
        if (span === undefined) return;
        this.batchSpans.delete(id(event.key, event.epoch));
        span.setAttribute('checkpoint.batch.committed', event.committed === true);
        if (event.committed !== true) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      },
      itemsSkipped: (event) => {
        instruments.skipped.add(event.count);
        // The skipped item moved the checkpoint past it, ending its batch when it was the last.
        if (event.endsBatch) instruments.batches.add(1);
      },
      fenced: () => instruments.fenced.add(1),
      conflict: () => instruments.conflicts.add(1),
      reaped: () => instruments.takeovers.add(1, { reason: 'reaped' }),
    };
  }
}
