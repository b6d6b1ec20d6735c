// 3. Transactional mode: what the advance adds to a batch that writes in a transaction.
//
// Each batch inserts 100 rows. The floor runs that insert alone in a transaction of its own
// (DataSource.transaction, as a user would); the hand-written way adds service.advance with the
// transaction's manager; the decorator does the same through batch.manager. The time of a batch
// is the gap between consecutive batches (transaction start to commit, plus the loop around it).
// The three run side by side and take turns batch by batch (harness.ts: lockstep), each passing
// the turn after its insert, inside its open transaction, so that a burst of load from
// elsewhere hits all three alike; the pool has a connection per loop, so none waits for one.
// The decorator opens its first transaction before the first mark, and after its last batch
// opens none, so its intervals hold one transaction start fewer per run than the other ways'
// (19 in 20): a bias of a twentieth of a BEGIN round trip (~5 µs) in its favour.
import { bootApp } from './app.js';
import type { BenchEnv } from './env.js';
import { lockstep, samplesOf, summarize, type LockstepVariant, type Timeline } from './harness.js';
import { BATCH_SIZE, BenchEffect, effectsOf } from './jobs.js';
import { latencyCells, ms, ratio, summaryJson, target, type Json, type Section } from './report.js';

/** Batches per run: a run is one decorated call, so a few batches amortise its claim. */
const BATCHES_PER_RUN = 20;
const ROUNDS = 40;
const WARMUP_ROUNDS = 3;
const DECORATOR_OVER_INSERT_MAX = 1.2;

const WAYS = {
  decorator: '@Checkpointed({ transactional: true }): insert + advance',
  hand: 'hand-written: insert + advance in one transaction',
  insert: 'insert alone, in a transaction (floor)',
} as const;
type Way = keyof typeof WAYS;
const ORDER: readonly Way[] = ['decorator', 'hand', 'insert'];

export async function measureTransactional(env: BenchEnv): Promise<Section> {
  // Three loops each holding a transaction's connection while they wait, and the session.
  const app = await bootApp({ url: env.url, schema: env.schema, poolSize: 6 });
  const { dataSource, service } = app;
  const items = Array.from({ length: BATCHES_PER_RUN * BATCH_SIZE }, (_, i) => i);
  const batchesOf = (from: number) => {
    const batches: number[][] = [];
    for (let index = from; index < items.length; index += BATCH_SIZE) {
      batches.push(items.slice(index, index + BATCH_SIZE));
    }
    return batches;
  };
  let run = 0;
  /** One run of BATCHES_PER_RUN batches; the sample is the batch times of the run. */
  const sample = (loop: (key: string, timeline: Timeline) => Promise<unknown>) => {
    return async (timeline: Timeline): Promise<number[]> => {
      await loop(`tx:${++run}`, timeline);
      const batchMs = timeline.intervals();
      if (batchMs.length !== BATCHES_PER_RUN) {
        throw new Error(`bench: a run had ${batchMs.length} batches, not ${BATCHES_PER_RUN}`);
      }
      return batchMs;
    };
  };
  const variants: LockstepVariant<number[]>[] = [
    {
      label: 'decorator',
      measure: sample((key, timeline) => app.jobs.insert({ key, items, timeline })),
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
                currentIndex: (index + 1) * BATCH_SIZE,
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
  let samples: Map<string, number[][]>;
  try {
    env.progress(
      `3. transactional mode: ${env.scaled(ROUNDS, 4)} rounds of ${BATCHES_PER_RUN} batches`,
    );
    samples = await lockstep(variants, env.scaled(ROUNDS, 4), WARMUP_ROUNDS);
  } finally {
    await app.close();
  }

  const stats = new Map(
    ORDER.map((way) => {
      const batchMs = samplesOf(samples, way).flat();
      return [way, { summary: summarize(batchMs), batchMs }] as const;
    }),
  );
  const get = (way: Way) => {
    const found = stats.get(way);
    if (found === undefined) throw new Error(`bench: no summary for ${way}`);
    return found.summary;
  };
  const floor = get('insert');
  const raw: Record<string, Json> = {};
  for (const [way, { summary, batchMs }] of stats) raw[WAYS[way]] = summaryJson(summary, batchMs);
  const over = get('decorator').p50 / floor.p50;
  const overHand = get('hand').p50 / floor.p50;
  return {
    id: '3',
    title: 'Transactional mode',
    about:
      `A batch inserts ${BATCH_SIZE} rows through TypeORM (\`manager.insert\`) in its own ` +
      'transaction. With checkpointing, the advance runs in that same transaction (one commit). ' +
      `Runs of ${BATCHES_PER_RUN} batches; the three ways run side by side, taking turns batch ` +
      'by batch (after the insert), and the times exclude the waits for the turn. Each row ' +
      'gives the time per batch. Floor: the same insert alone, in a transaction.',
    columns: ['way', 'batches', 'p50', 'p99', '× floor p50', '× floor p99'],
    rows: ORDER.map((way) => {
      const summary = get(way);
      return [WAYS[way], ...latencyCells(summary, floor)];
    }),
    targets: [
      target(
        `transactional batch with advance / insert alone (p50): ${ratio(over)}; by hand ` +
          `${ratio(overHand)} (target ≤ ${DECORATOR_OVER_INSERT_MAX}x)`,
        over <= DECORATOR_OVER_INSERT_MAX,
      ),
    ],
    notes:
      over <= DECORATOR_OVER_INSERT_MAX
        ? []
        : [
            `The advance adds ${ms(get('decorator').p50 - floor.p50)} to a batch; what it costs ` +
              'inside the transaction is the same statement as outside: see Findings.',
          ],
    raw,
  };
}
