// 10. The default fingerprint: what digesting the method's arguments costs an attempt.
//
// A decorated method with no `fingerprint` option digests its arguments once per attempt (not
// per batch). Two inputs of 20,000 items: ids (36-character strings) and abstracts (an id and
// 1,500 characters of text each). Each round runs one whole attempt (claim, 200 batches of 100
// with trivial work, complete) on a fresh key with the default fingerprint and with
// `fingerprint: false`, interleaved; the digest alone is timed beside them.
import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { CheckpointCtx, Checkpointed, type CheckpointContext } from '../src/index.js';
import { inputDigest } from '../src/attempt/fingerprint.js';
import { bootApp } from './app.js';
import type { BenchEnv } from './env.js';
import { interleave, samplesOf, summarize, timed, type Variant } from './harness.js';
import { BATCH_SIZE } from './jobs.js';
import { count, ms, ratio, summaryJson, target, type Json, type Section } from './report.js';

const ITEMS = 20_000;
const ROUNDS = 20;
const WARMUP_ROUNDS = 2;
/** The default may cost a realistic attempt at most this much more than no fingerprint. */
const DEFAULT_OVER_NONE_MAX = 1.1;

interface Input {
  key: string;
  items: readonly unknown[];
}

function consume(ctx: CheckpointContext | undefined, items: readonly unknown[]) {
  return (async () => {
    let seen = 0;
    for await (const batch of (ctx as CheckpointContext).batches(items)) seen += batch.items.length;
    return seen;
  })();
}

@Injectable()
class FingerprintJobs {
  @Checkpointed({ key: (input: Input) => input.key, batchSize: BATCH_SIZE })
  byDefault(input: Input, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    return consume(ctx, input.items);
  }

  @Checkpointed({ key: (input: Input) => input.key, batchSize: BATCH_SIZE, fingerprint: false })
  without(input: Input, @CheckpointCtx() ctx?: CheckpointContext): Promise<number> {
    return consume(ctx, input.items);
  }
}

const INPUTS = {
  ids: Array.from(
    { length: ITEMS },
    (_, i) => `${String(i).padStart(8, '0')}-0000-4000-8000-000000000000`,
  ),
  abstracts: Array.from({ length: ITEMS }, (_, i) => ({
    id: `abstract-${i}`,
    text: `Abstract ${i}. `.padEnd(1500, 'lorem ipsum dolor sit amet '),
  })),
} as const;
type InputName = keyof typeof INPUTS;
const NAMES = Object.keys(INPUTS) as InputName[];

export async function measureFingerprint(env: BenchEnv): Promise<Section> {
  const app = await bootApp({
    url: env.url,
    schema: env.schema,
    poolSize: 3,
    providers: [FingerprintJobs],
  });
  const jobs = app.get(FingerprintJobs);
  let sequence = 0;
  const label = (name: InputName, way: 'default' | 'false' | 'digest') =>
    way === 'digest'
      ? `${name}: the digest alone`
      : `${name}: attempt, fingerprint ${way === 'default' ? 'default' : 'false'}`;
  let samples: Map<string, number[]>;
  try {
    const variants: Variant[] = NAMES.flatMap((name) => [
      {
        label: label(name, 'default'),
        measure: timed(() => jobs.byDefault({ key: `fp:${++sequence}`, items: INPUTS[name] })),
      },
      {
        label: label(name, 'false'),
        measure: timed(() => jobs.without({ key: `fp:${++sequence}`, items: INPUTS[name] })),
      },
      {
        label: label(name, 'digest'),
        measure: timed(() => Promise.resolve(inputDigest([{ key: 'k', items: INPUTS[name] }]))),
      },
    ]);
    env.progress(`10. default fingerprint: ${env.scaled(ROUNDS, 3)} rounds`);
    samples = await interleave(variants, env.scaled(ROUNDS, 3), env.scaled(WARMUP_ROUNDS, 1));
  } finally {
    await app.close();
  }

  const raw: Record<string, Json> = {};
  const rows: string[][] = [];
  const targets = [];
  for (const name of NAMES) {
    const withDefault = summarize(samplesOf(samples, label(name, 'default')));
    const without = summarize(samplesOf(samples, label(name, 'false')));
    const digest = summarize(samplesOf(samples, label(name, 'digest')));
    for (const way of ['default', 'false', 'digest'] as const) {
      raw[label(name, way)] = summaryJson(summarize(samplesOf(samples, label(name, way))));
    }
    const over = withDefault.p50 / without.p50;
    rows.push([
      `${count(ITEMS)} ${name}`,
      count(withDefault.n),
      ms(withDefault.p50),
      ms(without.p50),
      ratio(over),
      ms(digest.p50),
    ]);
    // The target is for ids, what a queued chunk usually carries (DESIGN: job.data.ids); the
    // abstracts row shows what a 30 MB argument costs, with no target: there the advice is a
    // fingerprint function.
    if (name !== 'ids') continue;
    targets.push(
      target(
        `${name}: attempt with the default fingerprint / with fingerprint: false (p50): ` +
          `${ratio(over)} (≤ ${DEFAULT_OVER_NONE_MAX}x)`,
        over <= DEFAULT_OVER_NONE_MAX,
      ),
    );
  }
  return {
    id: '10',
    title: 'Default fingerprint',
    about:
      `One whole attempt (claim, ${count(ITEMS / BATCH_SIZE)} batches of ${BATCH_SIZE} with trivial ` +
      `work, complete) on a ${count(ITEMS)}-item input, with the default fingerprint (a digest of ` +
      'the arguments) and with `fingerprint: false`, interleaved; and the digest alone.',
    columns: ['input', 'n', 'p50 default', 'p50 false', 'default / false', 'digest p50'],
    rows,
    targets,
    notes: [
      'The digest is taken once per attempt (a resume digests again), never per batch: its cost ' +
        'grows with the size of the arguments (sha256 over every string, about 30 MB for the ' +
        'abstracts), not with the number of batches. For arguments that large, give ' +
        '`fingerprint` a function returning something small (the ids, a run id, a count), or ' +
        '`false`.',
    ],
    raw,
  };
}
