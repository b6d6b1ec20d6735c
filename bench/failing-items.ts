// 9. Items that fail: what a retry and skip policy costs.
//
// (a) No failing item: the same transactional job (batches of 50, each inserting its 50 rows
// through batch.manager) with and without `retry` + `skip` policies, side by side, taking turns
// batch by batch (harness.ts: lockstep). The policy should cost nothing until an error happens.
// (b) One failing item: a run of one batch of 50 whose 26th item is refused (the batch writes
// 25 rows, throws, is rolled back and replayed item by item: 49 one-item transactions and one
// ledger write) against the same run with no failing item, interleaved run by run.
import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { CheckpointCtx, Checkpointed, type CheckpointContext } from '../src/index.js';
import { bootApp } from './app.js';
import type { BenchEnv } from './env.js';
import {
  interleave,
  lockstep,
  samplesOf,
  summarize,
  timed,
  type LockstepVariant,
  type Summary,
  type Timeline,
} from './harness.js';
import { BenchEffect, effectsOf } from './jobs.js';
import { count, ms, ratio, summaryJson, target, type Json, type Section } from './report.js';

const BATCH = 50;
const BATCHES_PER_RUN = 20;
const ROUNDS = 40;
const WARMUP_ROUNDS = 3;
const FAILING_ROUNDS = 60;
const POLICY_OVER_NONE_MAX = 1.02;
/** The item of the failing batch that is refused. */
const REFUSED_AT = 25;

class RefusedError extends Error {}
class RateLimitError extends Error {}

interface ItemsInput {
  key: string;
  items: readonly number[];
  timeline?: Timeline;
  /** An item that always throws RefusedError. */
  refused?: number;
}

const byKey = (input: ItemsInput) => input.key;

/** Writes the batch's rows up to the refused item, then throws; or all of them. */
async function body(
  input: ItemsInput,
  batch: { items: number[]; index: number; manager: EntityManager },
): Promise<void> {
  input.timeline?.mark();
  const at = input.refused === undefined ? -1 : batch.items.indexOf(input.refused);
  await batch.manager.insert(
    BenchEffect,
    effectsOf(at < 0 ? batch.items : batch.items.slice(0, at), batch.index),
  );
  await input.timeline?.pass();
  if (at >= 0) throw new RefusedError(`item ${input.refused} refused`);
}

@Injectable()
export class FailingItemsJobs {
  @Checkpointed({ key: byKey, batchSize: BATCH, transactional: true })
  async plain(input: ItemsInput, @CheckpointCtx() ctx?: CheckpointContext): Promise<void> {
    for await (const batch of (ctx as CheckpointContext).batches(input.items)) {
      await body(input, batch);
    }
    input.timeline?.mark();
  }

  @Checkpointed({
    key: byKey,
    batchSize: BATCH,
    transactional: true,
    retry: { limit: 3, backoff: { initialMs: 1 }, on: [RateLimitError] },
    skip: { on: [RefusedError], limit: { ratio: 0.1 } },
  })
  async guarded(input: ItemsInput, @CheckpointCtx() ctx?: CheckpointContext): Promise<void> {
    for await (const batch of (ctx as CheckpointContext).batches(input.items)) {
      await body(input, batch);
    }
    input.timeline?.mark();
  }
}

export async function measureFailingItems(env: BenchEnv): Promise<Section> {
  const app = await bootApp({
    url: env.url,
    schema: env.schema,
    poolSize: 6,
    providers: [FailingItemsJobs],
  });
  const jobs = app.get(FailingItemsJobs);
  const items = Array.from({ length: BATCHES_PER_RUN * BATCH }, (_, i) => i);
  const one = items.slice(0, BATCH);
  let run = 0;
  let clean: Map<string, number[][]>;
  let failing: Map<string, number[]>;
  try {
    env.progress(
      `9. items that fail: ${env.scaled(ROUNDS, 2)} rounds of ${count(items.length)} items`,
    );
    const loop = (call: (key: string, timeline: Timeline) => Promise<void>) => {
      return async (timeline: Timeline): Promise<number[]> => {
        await call(`items:${++run}`, timeline);
        const batchMs = timeline.intervals();
        if (batchMs.length !== BATCHES_PER_RUN) {
          throw new Error(`bench: a run had ${batchMs.length} batches, not ${BATCHES_PER_RUN}`);
        }
        return batchMs;
      };
    };
    const variants: LockstepVariant<number[]>[] = [
      { label: 'none', measure: loop((key, timeline) => jobs.plain({ key, items, timeline })) },
      {
        label: 'policy',
        measure: loop((key, timeline) => jobs.guarded({ key, items, timeline })),
      },
      // The same job as `none` again: how far two identical loops differ here (the noise).
      { label: 'control', measure: loop((key, timeline) => jobs.plain({ key, items, timeline })) },
    ];
    clean = await lockstep(variants, env.scaled(ROUNDS, 2), WARMUP_ROUNDS);

    env.progress(`9. one failing item: ${env.scaled(FAILING_ROUNDS, 3)} rounds`);
    failing = await interleave(
      [
        {
          label: 'clean',
          measure: timed(() => jobs.guarded({ key: `items:${++run}`, items: one })),
        },
        {
          label: 'failing',
          measure: timed(() =>
            jobs.guarded({ key: `items:${++run}`, items: one, refused: REFUSED_AT }),
          ),
        },
      ],
      env.scaled(FAILING_ROUNDS, 3),
      WARMUP_ROUNDS,
    );
    // Every failing run left exactly its one item in the ledger, and 49 rows.
    const [ledger] = await app.dataSource.query<Array<{ n: string }>>(
      `SELECT count(*) AS n FROM "${env.schema}".failed_item WHERE item_index = $1`,
      [REFUSED_AT],
    );
    const expected = samplesOf(failing, 'failing').length + WARMUP_ROUNDS;
    if (Number(ledger.n) !== expected) {
      throw new Error(`bench: ${ledger.n} ledger rows, expected ${expected}`);
    }
  } finally {
    await app.close();
  }

  const batchOf = (label: string): Summary => summarize(samplesOf(clean, label).flat());
  const none = batchOf('none');
  const policy = batchOf('policy');
  const control = batchOf('control');
  const cleanRun = summarize(samplesOf(failing, 'clean'));
  const failingRun = summarize(samplesOf(failing, 'failing'));
  const overhead = policy.p50 / none.p50;
  const noise = control.p50 / none.p50;
  const failingCost = failingRun.p50 / cleanRun.p50;
  const raw: Record<string, Json> = {
    'batch of 50, no policy': summaryJson(none, samplesOf(clean, 'none').flat()),
    'batch of 50, retry + skip policy': summaryJson(policy, samplesOf(clean, 'policy').flat()),
    'batch of 50, no policy (control)': summaryJson(control, samplesOf(clean, 'control').flat()),
    'run of one batch of 50, no failing item': summaryJson(cleanRun, samplesOf(failing, 'clean')),
    'run of one batch of 50, one refused item': summaryJson(
      failingRun,
      samplesOf(failing, 'failing'),
    ),
  };
  return {
    id: '9',
    title: 'Items that fail',
    about:
      `Transactional batches of ${BATCH}, each inserting its rows through batch.manager. ` +
      `Rows 1-3: runs of ${BATCHES_PER_RUN} batches with no failing item, with and without ` +
      'retry + skip policies, and the policy-less job a second time as a control, side by ' +
      'side taking turns batch by batch; a batch is the time from one batch reaching the loop ' +
      'body to the next. Rows 4-5: a whole call (claim, ' +
      `one batch of ${BATCH}, complete) under the skip policy, interleaved run by run: with no ` +
      `failing item, and with item ${REFUSED_AT + 1} refused (the batch writes ${REFUSED_AT} ` +
      `rows, throws and rolls back; then ${BATCH} one-item transactions, ${BATCH - 1} of them ` +
      'committing a row and the advance, one writing the ledger row and the advance).',
    columns: ['what', 'samples', 'p50', 'p99', 'ratio (p50)'],
    rows: [
      ['batch of 50, no policy', count(none.n), ms(none.p50), ms(none.p99), ratio(1)],
      [
        'batch of 50, retry + skip policy',
        count(policy.n),
        ms(policy.p50),
        ms(policy.p99),
        ratio(overhead),
      ],
      [
        'batch of 50, no policy again (control: the noise)',
        count(control.n),
        ms(control.p50),
        ms(control.p99),
        ratio(noise),
      ],
      [
        'call with one batch of 50, no failing item',
        count(cleanRun.n),
        ms(cleanRun.p50),
        ms(cleanRun.p99),
        ratio(1),
      ],
      [
        'call with one batch of 50, one refused item',
        count(failingRun.n),
        ms(failingRun.p50),
        ms(failingRun.p99),
        ratio(failingCost),
      ],
    ],
    targets: [
      target(
        `batch with no failing item, skip policy / no policy (p50): ${ratio(overhead)} ` +
          `(target ≤ ${POLICY_OVER_NONE_MAX}x; the same job against itself: ${ratio(noise)})`,
        overhead <= POLICY_OVER_NONE_MAX,
      ),
    ],
    notes: [
      `A batch of ${BATCH} with one refused item costs ${ratio(failingCost)} a clean one ` +
        `(${ms(failingRun.p50)} against ${ms(cleanRun.p50)} per call, p50): about ` +
        `${ms((failingRun.p50 - cleanRun.p50) / BATCH)} per replayed item, the price of one ` +
        'transaction each. Reported, no target.',
    ],
    raw,
  };
}
