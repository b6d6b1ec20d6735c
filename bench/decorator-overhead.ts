// 2. What @Checkpointed costs on top of making the same saves by hand.
//
// 100,000 items in batches of 100 with trivial work per item, so that the checkpointing is all
// there is to measure: the decorator with batches(), a hand-written loop making the same calls
// (claim, one advance per batch, complete) on CheckpointService, and the loop with no
// checkpointing at all (the floor). The three run side by side and take turns batch by batch
// (harness.ts: lockstep), so that a burst of load from elsewhere hits all three alike. A run is
// one whole call; batch times come from a Timeline.
import type { CheckpointService } from '../src/index.js';
import { bootApp } from './app.js';
import type { BenchEnv } from './env.js';
import {
  lockstep,
  samplesOf,
  summarize,
  type LockstepVariant,
  type Summary,
  type Timeline,
} from './harness.js';
import { BATCH_SIZE, work } from './jobs.js';
import { count, ms, ratio, summaryJson, target, type Json, type Section } from './report.js';

const ITEMS = 100_000;
/** Runs per way: a checkpointed run is ~1,000 durable writes (0.3-0.6 s). */
const ROUNDS = 20;
const WARMUP_ROUNDS = 1;
const DECORATOR_OVER_HAND_MAX = 1.1;

const WAYS = {
  decorator: '@Checkpointed + batches()',
  hand: 'hand-written loop (claim, advance per batch, complete)',
  none: 'no checkpointing (floor)',
} as const;
type Way = keyof typeof WAYS;
const ORDER: readonly Way[] = ['decorator', 'hand', 'none'];

/** One run: the whole call, and the time of each batch within it. */
interface RunSample {
  totalMs: number;
  batchMs: number[];
}

/** The floor: the same batches and the same work, and nothing saved. */
async function noCheckpointing(items: readonly number[], timeline: Timeline): Promise<number> {
  let sum = 0;
  for (let index = 0; index < items.length; index += BATCH_SIZE) {
    timeline.mark();
    sum += work(items.slice(index, index + BATCH_SIZE));
    await timeline.pass();
  }
  timeline.mark();
  return sum;
}

/** What a user would write without the decorator, making exactly the decorator's saves. */
async function handWritten(
  service: CheckpointService,
  key: string,
  items: readonly number[],
  timeline: Timeline,
): Promise<number> {
  const claim = await service.claim(key);
  const totalBatches = Math.ceil(items.length / BATCH_SIZE);
  let sum = 0;
  let index = claim.resumeFrom;
  let batchIndex = claim.currentBatchIndex;
  let processedBatches = claim.processedBatches;
  while (index < items.length) {
    timeline.mark();
    const batch = items.slice(index, index + BATCH_SIZE);
    sum += work(batch);
    await timeline.pass();
    index += batch.length;
    batchIndex += 1;
    processedBatches += 1;
    await service.advance(key, claim.epoch, {
      currentIndex: index,
      currentBatchIndex: batchIndex,
      processedBatches,
      totalBatches,
      totalItems: items.length,
    });
  }
  timeline.mark();
  await service.complete(key, claim.epoch, sum);
  return sum;
}

export async function measureDecoratorOverhead(env: BenchEnv): Promise<Section> {
  const app = await bootApp({ url: env.url, schema: env.schema, poolSize: 4 });
  const items = Array.from({ length: ITEMS }, (_, i) => i);
  const expected = work(items);
  let run = 0;
  /** Times one call (less its waits for the turn), checks its work, keeps its batch times. */
  const sample = (call: (key: string, timeline: Timeline) => Promise<number>) => {
    return async (timeline: Timeline): Promise<RunSample> => {
      const key = `overhead:${++run}`;
      const started = performance.now();
      const sum = await call(key, timeline);
      const totalMs = performance.now() - started - timeline.waitedMs;
      if (sum !== expected) throw new Error(`bench: a run summed ${sum}, not ${expected}`);
      return { totalMs, batchMs: timeline.intervals() };
    };
  };
  const variants: LockstepVariant<RunSample>[] = [
    {
      label: 'decorator',
      measure: sample((key, timeline) => app.jobs.sum({ key, items, timeline })),
    },
    {
      label: 'hand',
      measure: sample((key, timeline) => handWritten(app.service, key, items, timeline)),
    },
    { label: 'none', measure: sample((_key, timeline) => noCheckpointing(items, timeline)) },
  ];
  let samples: Map<string, RunSample[]>;
  try {
    env.progress(`2. decorator overhead: ${env.scaled(ROUNDS, 2)} rounds of ${count(ITEMS)} items`);
    samples = await lockstep(variants, env.scaled(ROUNDS, 2), WARMUP_ROUNDS);
  } finally {
    await app.close();
  }

  const runs = new Map<Way, Summary>();
  const batches = new Map<Way, Summary>();
  const raw: Record<string, Json> = {};
  for (const way of ORDER) {
    const taken = samplesOf(samples, way);
    const totals = taken.map((each) => each.totalMs);
    const batchTimes = taken.flatMap((each) => each.batchMs);
    runs.set(way, summarize(totals));
    batches.set(way, summarize(batchTimes));
    raw[WAYS[way]] = {
      runMs: summaryJson(summarize(totals), totals),
      batchMs: summaryJson(summarize(batchTimes), batchTimes),
    };
  }
  const get = (map: Map<Way, Summary>, way: Way): Summary => {
    const summary = map.get(way);
    if (summary === undefined) throw new Error(`bench: no summary for ${way}`);
    return summary;
  };
  const floor = get(runs, 'none');
  const hand = get(runs, 'hand');
  const rows = ORDER.map((way) => {
    const run = get(runs, way);
    const batch = get(batches, way);
    return [
      WAYS[way],
      count(run.n),
      ms(run.p50),
      ms(run.p99),
      ms(batch.p50),
      ms(batch.p99),
      ratio(run.p50 / floor.p50),
      ratio(run.p50 / hand.p50),
    ];
  });
  const overRuns = get(runs, 'decorator').p50 / hand.p50;
  const overBatches = get(batches, 'decorator').p50 / get(batches, 'hand').p50;
  return {
    id: '2',
    title: 'Overhead of the decorator',
    about:
      `${count(ITEMS)} items, batches of ${BATCH_SIZE}, trivial work per item (a sum). The three ` +
      'ways run side by side, taking turns batch by batch (one statement in flight at a time), ' +
      'a new run of each per round; times exclude the waits for the turn. A run is one whole ' +
      'call (claim, every batch, complete); a batch is the time from one batch reaching the ' +
      'loop body to the next (the body and the advance after it). Floor: the same loop with no ' +
      'checkpointing.',
    columns: [
      'way',
      'runs',
      'run p50',
      'run p99',
      'batch p50',
      'batch p99',
      '× floor (run p50)',
      '× hand-written (run p50)',
    ],
    rows,
    targets: [
      target(
        `@Checkpointed / hand-written loop (run p50): ${ratio(overRuns)}, per batch (p50) ` +
          `${ratio(overBatches)} (target ≤ ${DECORATOR_OVER_HAND_MAX}x)`,
        overRuns <= DECORATOR_OVER_HAND_MAX,
      ),
    ],
    notes: [],
    raw,
  };
}
