// 4. Resume: from the claim to the first item of the next batch, after 10,000 and after
// 1,000,000 items processed. Both probes get the same input list (1,001,000 items), so the
// resume point is the only difference. Each probe is a decorated call that claims, receives
// its first batch, and throws before that batch advances, so the stored resume point stays
// put for the next probe (see FirstBatchReached).
import { bootApp } from './app.js';
import type { BenchEnv } from './env.js';
import { interleave, samplesOf, summarize, timed, type Variant } from './harness.js';
import { BATCH_SIZE, FirstBatchReached } from './jobs.js';
import {
  count,
  latencyCells,
  ratio,
  summaryJson,
  target,
  type Json,
  type Section,
} from './report.js';

const RESUME_POINTS = [10_000, 1_000_000] as const;
const INPUT_ITEMS = 1_001_000;
const ROUNDS = 500;
const WARMUP_ROUNDS = 50;
/** "Flat": the p50s of the two resume points within this factor of each other. */
const FLAT_SPREAD_MAX = 1.15;

export async function measureResume(env: BenchEnv): Promise<Section> {
  const app = await bootApp({ url: env.url, schema: env.schema, poolSize: 4 });
  const items = Array.from({ length: INPUT_ITEMS }, (_, i) => i);
  const label = (point: number) => `resume after ${count(point)} items`;
  const floorLabel = 'bare UPDATE (floor)';
  let samples: Map<string, number[]>;
  try {
    // Prepare each key as a crashed job leaves it: a checkpoint at the resume point.
    for (const point of RESUME_POINTS) {
      await app.service.saveCheckpoint(`resume:${point}`, {
        currentIndex: point,
        currentBatchIndex: point / BATCH_SIZE,
        processedBatches: point / BATCH_SIZE,
        totalBatches: Math.ceil(INPUT_ITEMS / BATCH_SIZE),
      });
    }
    const probe = (point: number) => async (): Promise<number> => {
      const started = performance.now();
      let reached: number | undefined;
      try {
        await app.jobs.firstBatch({
          key: `resume:${point}`,
          items,
          onFirstBatch: (startIndex) => {
            reached = performance.now();
            if (startIndex !== point) {
              throw new Error(`bench: resumed at item ${startIndex}, not ${point}`);
            }
          },
        });
      } catch (error) {
        if (!(error instanceof FirstBatchReached)) throw error;
      }
      if (reached === undefined) throw new Error('bench: the probe never reached a batch');
      return reached - started;
    };
    const variants: Variant[] = [
      ...RESUME_POINTS.map((point) => ({ label: label(point), measure: probe(point) })),
      { label: floorLabel, measure: timed(() => env.raw.query(env.sql.bareUpdate, [1])) },
    ];
    env.progress(`4. resume: ${env.scaled(ROUNDS, 20)} rounds`);
    samples = await interleave(variants, env.scaled(ROUNDS, 20), env.scaled(WARMUP_ROUNDS, 5));
  } finally {
    await app.close();
  }

  const labels = [...RESUME_POINTS.map(label), floorLabel];
  const stats = new Map(labels.map((each) => [each, summarize(samplesOf(samples, each))]));
  const get = (each: string) => {
    const summary = stats.get(each);
    if (summary === undefined) throw new Error(`bench: no summary for ${each}`);
    return summary;
  };
  const floor = get(floorLabel);
  const raw: Record<string, Json> = {};
  for (const each of labels) raw[each] = summaryJson(get(each), samplesOf(samples, each));
  const [near, far] = RESUME_POINTS.map((point) => get(label(point)));
  const spread = far.p50 / near.p50;
  return {
    id: '4',
    title: 'Resume',
    about:
      `Time from calling the decorated method (its claim) until the loop body receives the first ` +
      `batch, for a checkpoint at item 10,000 and at item 1,000,000 of the same ` +
      `${count(INPUT_ITEMS)}-item input. Interleaved with the floor: a bare single-row UPDATE.`,
    columns: ['resume point', 'n', 'p50', 'p99', '× floor p50', '× floor p99'],
    rows: labels.map((each) => {
      const summary = get(each);
      return [each, ...latencyCells(summary, floor)];
    }),
    targets: [
      target(
        `resume after 1,000,000 / after 10,000 items (p50): ${ratio(spread)} ` +
          `(flat: within ${FLAT_SPREAD_MAX}x either way)`,
        spread <= FLAT_SPREAD_MAX && spread >= 1 / FLAT_SPREAD_MAX,
      ),
    ],
    notes: [
      'A resume is one statement (section 6): the claim (one upsert, one durable commit), which ' +
        'takes the lease and returns the resume point; `batches()` then slices the input at it. ' +
        'Neither depends on how far the work had got.',
    ],
    raw,
  };
}
