// 3. Transactional mode: what the advance adds to a batch that writes in a transaction.
//
// Each batch inserts one row per item, at 100 and at 10 items a batch. The floor runs that
// insert alone in a transaction of its own (DataSource.transaction, as a user would); the
// hand-written way adds service.advance with the transaction's manager (one more round trip);
// the decorator does the same through batch.manager, its advance sent in one message with the
// COMMIT and the next batch's START TRANSACTION (the last batch's with its COMMIT alone); the
// fourth way sends a SELECT 1 in the advance's place by the decorator's own path, the bound
// below which no statement in the batch's transaction comes on this machine. The time
// of a batch is the gap between consecutive batches (transaction start to commit, plus the loop
// around it). The four run side by side and take turns batch by batch (harness.ts: lockstep),
// each passing the turn after its insert, inside its open transaction, so that a burst of load
// from elsewhere hits all four alike; the pool has a connection per loop, so none waits for
// one. The decorator and the fourth way begin their first transaction before the first mark;
// every later one begins in the message that commits the batch before it.
import { CheckpointRepository } from '../src/checkpoint.repository.js';
import type { Query } from '../src/checkpoint.sql.js';
import { bootApp, type BenchApp } from './app.js';
import type { BenchEnv } from './env.js';
import {
  lockstep,
  samplesOf,
  summarize,
  type LockstepVariant,
  type Summary,
  type Timeline,
} from './harness.js';
import { BATCH_SIZE, BenchEffect, effectsOf, SMALL_BATCH_SIZE, type LoopInput } from './jobs.js';
import { latencyCells, ms, ratio, summaryJson, target, type Json, type Section } from './report.js';

/** Batches per run: a run is one decorated call, so a few batches amortise its claim. */
const BATCHES_PER_RUN = 20;
const ROUNDS = 40;
const WARMUP_ROUNDS = 3;
const DECORATOR_OVER_INSERT_MAX = 1.1;

const WAYS = {
  decorator: '@Checkpointed({ transactional: true }): insert + advance',
  hand: 'hand-written: insert + advance in one transaction',
  statement:
    'insert + SELECT 1 sent as the decorator sends its advance (the least a statement costs)',
  insert: 'insert alone, in a transaction (floor)',
} as const;
type Way = keyof typeof WAYS;
const ORDER: readonly Way[] = ['decorator', 'hand', 'statement', 'insert'];
/** A statement that does no work, sent the way the decorator sends its advance. */
const NOTHING: Query = { text: 'SELECT 1', values: [] };
/** The same, in one message with the COMMIT and the next START TRANSACTION. */
const NOTHING_THEN_BEGIN = {
  prepare: 'PREPARE bench_nothing AS SELECT 1',
  text: 'EXECUTE bench_nothing; COMMIT; START TRANSACTION',
};

export async function measureTransactional(env: BenchEnv): Promise<Section> {
  // Four loops each holding a transaction's connection while they wait, and the session.
  const app = await bootApp({ url: env.url, schema: env.schema, poolSize: 7 });
  const rows: string[][] = [];
  const targets: Section['targets'] = [];
  const notes: string[] = [];
  const raw: Record<string, Json> = {};
  try {
    for (const size of [BATCH_SIZE, SMALL_BATCH_SIZE]) {
      env.progress(
        `3. transactional mode, ${size} rows a batch: ${env.scaled(ROUNDS, 4)} rounds of ` +
          `${BATCHES_PER_RUN} batches`,
      );
      const stats = await measureSize(env, app, size);
      const floor = stats.insert.summary;
      for (const way of ORDER) {
        rows.push([`${size} rows: ${WAYS[way]}`, ...latencyCells(stats[way].summary, floor)]);
        raw[`${size} rows: ${WAYS[way]}`] = summaryJson(stats[way].summary, stats[way].batchMs);
      }
      const over = stats.decorator.summary.p50 / floor.p50;
      const overHand = stats.hand.summary.p50 / floor.p50;
      const overNothing = stats.statement.summary.p50 / floor.p50;
      targets.push(
        target(
          `${size} rows a batch: transactional batch with advance / insert alone (p50): ` +
            `${ratio(over)}; by hand ${ratio(overHand)} (target ≤ ${DECORATOR_OVER_INSERT_MAX}x)`,
          over <= DECORATOR_OVER_INSERT_MAX,
        ),
      );
      const change = (way: Way) => {
        const delta = stats[way].summary.p50 - floor.p50;
        return delta >= 0 ? `adds ${ms(delta)}` : `takes ${ms(-delta)} off`;
      };
      notes.push(
        `${size} rows a batch, against the insert alone: the decorator ${change('decorator')}, ` +
          `the advance by hand (a statement of its own) ${change('hand')}, and a statement ` +
          `that does nothing, sent as the decorator sends its advance, ${change('statement')} ` +
          `(${ratio(overNothing)}): the message that commits a batch also begins the next, ` +
          "which spares the BEGIN the insert alone pays; what is left is the advance's own work.",
      );
    }
  } finally {
    await app.close();
  }
  return {
    id: '3',
    title: 'Transactional mode',
    about:
      'A batch inserts one row per item through TypeORM (`manager.insert`) in its own ' +
      'transaction. With checkpointing, the advance runs in that same transaction (one commit): ' +
      'the decorator sends it in one message with the COMMIT and the next batch’s START ' +
      'TRANSACTION (the last batch: with its COMMIT), the hand-written way awaits it before ' +
      'committing. A fourth way sends a SELECT 1 in the advance’s place the way the decorator ' +
      'sends its advance: what a statement that does nothing costs. ' +
      `Runs of ${BATCHES_PER_RUN} batches of ${BATCH_SIZE} and of ${SMALL_BATCH_SIZE} items; ` +
      'the four ways run side by side, taking turns batch by batch (after the insert), and the ' +
      'times exclude the waits for the turn. Each row gives the time per batch. Floor: the same ' +
      'insert alone, in a transaction.',
    columns: ['way', 'batches', 'p50', 'p99', '× floor p50', '× floor p99'],
    rows,
    targets,
    notes,
    raw,
  };
}

/** The four ways side by side at `size` items a batch. */
async function measureSize(
  env: BenchEnv,
  app: BenchApp,
  size: number,
): Promise<Record<Way, { summary: Summary; batchMs: number[] }>> {
  const { dataSource, service } = app;
  const repository = app.get(CheckpointRepository);
  const items = Array.from({ length: BATCHES_PER_RUN * size }, (_, i) => i);
  const batchesOf = (from: number) => {
    const batches: number[][] = [];
    for (let index = from; index < items.length; index += size) {
      batches.push(items.slice(index, index + size));
    }
    return batches;
  };
  let run = 0;
  /** One run of BATCHES_PER_RUN batches; the sample is the batch times of the run. */
  const sample = (loop: (key: string, timeline: Timeline) => Promise<unknown>) => {
    return async (timeline: Timeline): Promise<number[]> => {
      await loop(`tx:${size}:${++run}`, timeline);
      const batchMs = timeline.intervals();
      if (batchMs.length !== BATCHES_PER_RUN) {
        throw new Error(`bench: a run had ${batchMs.length} batches, not ${BATCHES_PER_RUN}`);
      }
      return batchMs;
    };
  };
  const decorated = (input: LoopInput) =>
    size === BATCH_SIZE ? app.jobs.insert(input) : app.jobs.insertSmall(input);
  const variants: LockstepVariant<number[]>[] = [
    {
      label: 'decorator',
      measure: sample((key, timeline) => decorated({ key, items, timeline })),
    },
    {
      label: 'hand',
      measure: sample(async (key, timeline) => {
        const claim = await service.claim(key);
        for (const [index, batch] of batchesOf(claim.resumeFrom).entries()) {
          timeline.mark();
          await dataSource.transaction(async (manager) => {
            await manager.insert(BenchEffect, effectsOf(batch, index));
            await timeline.pass();
            await service.advance(
              key,
              claim.epoch,
              {
                currentIndex: (index + 1) * size,
                currentBatchIndex: index + 1,
                processedBatches: index + 1,
                totalBatches: BATCHES_PER_RUN,
                totalItems: items.length,
              },
              { manager },
            );
          });
        }
        timeline.mark();
        await service.complete(key, claim.epoch);
      }),
    },
    {
      label: 'statement',
      measure: sample(async (key, timeline) => {
        const runner = dataSource.createQueryRunner('master');
        try {
          await runner.connect();
          await runner.startTransaction();
          const batches = batchesOf(0);
          for (const [index, batch] of batches.entries()) {
            timeline.mark();
            await runner.manager.insert(BenchEffect, effectsOf(batch, index));
            await timeline.pass();
            if (index < batches.length - 1) {
              await repository.commitAndBeginNext('bench', key, NOTHING_THEN_BEGIN, runner);
            } else {
              await repository.runAndCommit('bench', key, NOTHING, runner);
            }
          }
        } finally {
          await runner.release();
        }
        timeline.mark();
      }),
    },
    {
      label: 'insert',
      measure: sample(async (_key, timeline) => {
        for (const [index, batch] of batchesOf(0).entries()) {
          timeline.mark();
          await dataSource.transaction(async (manager) => {
            await manager.insert(BenchEffect, effectsOf(batch, index));
            await timeline.pass();
          });
        }
        timeline.mark();
      }),
    },
  ];
  const samples = await lockstep(variants, env.scaled(ROUNDS, 4), WARMUP_ROUNDS);
  const of = (way: Way) => {
    const batchMs = samplesOf(samples, way).flat();
    return { summary: summarize(batchMs), batchMs };
  };
  return {
    decorator: of('decorator'),
    hand: of('hand'),
    statement: of('statement'),
    insert: of('insert'),
  };
}
