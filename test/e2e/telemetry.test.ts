// Metrics and spans through @opentelemetry/api, read with an in-memory OpenTelemetry SDK: after a
// run with crashes (a worker process SIGKILLed mid-batch, an attempt that throws, a skipped item,
// a fenced writer, a refused claim), the counters equal what the database says.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Injectable, type INestApplicationContext } from '@nestjs/common';
import { metrics, trace } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type DataPoint,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import {
  CheckpointCtx,
  CheckpointFencedError,
  CheckpointLeaseConflictError,
  CheckpointService,
  Checkpointed,
  type CheckpointContext,
} from '../../src/index.js';
import { createEffectTable, Effect, TransactionalJob } from '../fixtures/batch-job.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';
import { Child } from '../support/process.js';

class Refused extends Error {}

/** Fails its first attempt at batch 3; item 7 is always refused (skipped into the ledger). */
@Injectable()
class FlakyJob {
  @Checkpointed({
    key: (input: { key: string }) => input.key,
    batchSize: 10,
    transactional: true,
    skip: { on: [Refused] },
  })
  async run(input: { key: string; count: number }, @CheckpointCtx() ctx?: CheckpointContext) {
    const context = ctx as CheckpointContext;
    const items = Array.from({ length: input.count }, (_, i) => i);
    for await (const batch of context.batches(items)) {
      if (batch.items.includes(7)) throw new Refused('item 7 refused');
      if (batch.index === 3 && context.attempt === 1) throw new Error('the model timed out');
    }
    return { done: true };
  }
}

const schema = uniqueSchema('otel');
const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
const meterProvider = new MeterProvider({ readers: [reader] });
const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(spans)],
});
let app: INestApplicationContext;

before(async () => {
  // The SDK is installed before the application starts, as an application's main.ts would.
  metrics.setGlobalMeterProvider(meterProvider);
  trace.setGlobalTracerProvider(tracerProvider);
  await sql(`CREATE SCHEMA "${schema}"`);
  await sql(createEffectTable(schema));
  app = await createTestApp({
    schema,
    entities: [Effect],
    providers: [TransactionalJob, FlakyJob],
  });
});

after(async () => {
  await app.close();
  await meterProvider.shutdown();
  await tracerProvider.shutdown();
  metrics.disable();
  trace.disable();
  await dropSchema(schema);
});

async function counters(): Promise<Map<string, Array<DataPoint<unknown>>>> {
  await reader.forceFlush();
  const found = new Map<string, Array<DataPoint<unknown>>>();
  for (const resource of exporter.getMetrics()) {
    for (const scope of resource.scopeMetrics) {
      for (const metric of scope.metrics) {
        found.set(metric.descriptor.name, metric.dataPoints);
      }
    }
  }
  exporter.reset();
  return found;
}

const sum = (points: Array<DataPoint<unknown>> | undefined, filter?: Record<string, string>) =>
  (points ?? [])
    .filter((point) =>
      Object.entries(filter ?? {}).every(([name, value]) => point.attributes[name] === value),
    )
    .reduce((total, point) => total + Number(point.value), 0);

describe('telemetry', () => {
  it('counters equal the database after a run with crashes', async (t: TestContext) => {
    // 1. A worker process dies mid-batch (SIGKILL inside batch 4): its batches count elsewhere.
    const child = Child.start('batch-worker', {
      SCHEMA: schema,
      KEY: 'crashed',
      ITEMS: '600',
      CRASH_PHASE: 'inside',
      CRASH_BATCH: '4',
    });
    const exit = await child.exited;
    assert.equal(exit.signal, 'SIGKILL');
    const [atCrash] = await sql<{ current_index: string; processed_batches: string }>(
      `SELECT current_index, processed_batches FROM "${schema}".checkpoint WHERE key = 'crashed'`,
    );
    assert.ok(atCrash);
    // This process takes it over and finishes it.
    await app
      .get(TransactionalJob)
      .run({ key: 'crashed', items: Array.from({ length: 600 }, (_, i) => i) });

    // 2. An attempt that throws at batch 3, with an item skipped into the ledger; then it resumes.
    const flaky = app.get(FlakyJob);
    await assert.rejects(flaky.run({ key: 'flaky', count: 95 }), /timed out/);
    await flaky.run({ key: 'flaky', count: 95 });

    // 3. A fenced writer and a refused claim.
    const service = app.get(CheckpointService);
    const old = await service.claim('fenced', { dispatch: 0 });
    const newer = await service.claim('fenced', { dispatch: 1 });
    await assert.rejects(
      service.advance('fenced', old.epoch, { currentIndex: 5 }),
      CheckpointFencedError,
    );
    await assert.rejects(service.claim('fenced'), CheckpointLeaseConflictError);
    await service.release('fenced', newer.epoch);

    const [db] = await sql<{ items: string; batches: string; skipped: string }>(
      `SELECT sum(current_index)::text AS items, sum(processed_batches)::text AS batches,
              sum(skipped_items)::text AS skipped
         FROM "${schema}".checkpoint`,
    );
    assert.ok(db);
    const found = await counters();
    const itemsHere = Number(db.items) - Number(atCrash.current_index) - Number(db.skipped);
    const batchesHere = Number(db.batches) - Number(atCrash.processed_batches);
    t.diagnostic(
      `database: ${db.items} items in ${db.batches} batches, ${db.skipped} skipped; the killed worker committed ${atCrash.current_index} items in ${atCrash.processed_batches} batches`,
    );
    assert.equal(sum(found.get('checkpoint.items.processed')), itemsHere);
    assert.equal(sum(found.get('checkpoint.batches.processed')), batchesHere);
    assert.equal(sum(found.get('checkpoint.items.skipped')), Number(db.skipped));
    assert.equal(Number(db.skipped), 1);
    assert.equal(sum(found.get('checkpoint.claims.fenced')), 1);
    assert.equal(sum(found.get('checkpoint.claims.conflicts')), 1);
    assert.equal(
      sum(found.get('checkpoint.takeovers'), { reason: 'crashed' }),
      2,
      'the killed worker and the superseded claim',
    );
    assert.equal(sum(found.get('checkpoint.attempts'), { outcome: 'completed' }), 2);
    assert.equal(sum(found.get('checkpoint.attempts'), { outcome: 'failed' }), 1);
    const durations = found.get('checkpoint.batch.duration') ?? [];
    assert.ok(durations.length > 0);

    // Spans: one per attempt, one per batch (committed ones as many as the batches counter).
    const finished = spans.getFinishedSpans();
    const attempts = finished.filter((span) => span.name === 'checkpoint.attempt');
    const batches = finished.filter(
      (span) => span.name === 'checkpoint.batch' && span.attributes['checkpoint.batch.committed'],
    );
    assert.ok(batches.length >= batchesHere - 1, `${batches.length} committed batch spans`);
    assert.ok(attempts.length >= 4, `${attempts.length} attempt spans`);
    const parents = new Set(attempts.map((span) => span.spanContext().spanId));
    assert.ok(
      batches.every(
        (span) =>
          span.parentSpanContext !== undefined && parents.has(span.parentSpanContext.spanId),
      ),
      'each batch span is a child of its attempt span',
    );
  });
});
