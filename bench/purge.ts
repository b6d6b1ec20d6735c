// 12. Retention at size (issue 20, part 2): the purge of the big database's oldest quarter,
// with one attempt advancing beside it (bench/history.ts fills the database and calls this).
import { CheckpointRetention, CheckpointService } from '../src/index.js';
import { CheckpointRepository } from '../src/checkpoint.repository.js';
import type pg from 'pg';
import type { BenchApp } from './app.js';
import type { BenchEnv } from './env.js';
import type { FillSize } from './fill.js';
import { summarize } from './harness.js';
import { watchLockWaits } from './lock-waits.js';
import { count, ms, ratio, summaryJson, target, type Section } from './report.js';

/**
 * Purges the oldest quarter of the big schema (about 5M rows at full size) while one attempt
 * advances beside it, and compares the advance with the same loop just before the purge.
 */
/** The big database as section 11 left it: its app, a connection of the bench's, a running key. */
export interface PurgeSide {
  schema: string;
  app: BenchApp;
  owner: pg.Client;
  key: string;
  epoch: number;
}

export async function measurePurge(
  env: BenchEnv,
  side: PurgeSide,
  size: FillSize,
): Promise<Section> {
  const service = side.app.get(CheckpointService);
  const retention = side.app.get(CheckpointRetention);
  const s = `"${side.schema}"`;
  // Keys and runs are spread evenly over 366 days back: older than 275 days is the oldest quarter.
  const days = 275;
  const { rows: old } = await side.owner.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${s}.checkpoint
     WHERE state IN ('completed', 'cancelled') AND updated_at < now() - make_interval(days => ${days})`,
  );
  const oldRows = Number(old[0].n);
  let index = 1_000_000;
  /** The advances beside the purge and the purge's statements, as [start, end] in ms. */
  const advances: [number, number][] = [];
  const slices: [number, number][] = [];
  const advance = async () => {
    const started = performance.now();
    await service.advance(side.key, side.epoch, { currentIndex: ++index });
    const ended = performance.now();
    advances.push([started, ended]);
    return ended - started;
  };
  // The purge's own statements, timed here too: to tell a long slice from a stall of the
  // whole machine, which holds the advance beside it just as long.
  const repository = side.app.get(CheckpointRepository);
  const run = repository.run.bind(repository);
  repository.run = async (...args: Parameters<typeof repository.run>) => {
    const started = performance.now();
    try {
      return await run(...args);
    } finally {
      if (args[0] === 'purge' || args[0] === 'retention') {
        slices.push([started, performance.now()]);
      }
    }
  };
  // The loop alone, as long as a short purge would take, then beside the purge.
  const alone: number[] = [];
  const aloneUntil = performance.now() + env.scaled(20_000, 2000);
  while (performance.now() < aloneUntil) alone.push(await advance());
  advances.length = 0;
  env.progress(`section 12: purging ${count(oldRows)} rows`);
  const beside: number[] = [];
  let done = false;
  // The purge takes its cutoff when it starts, a little later than the count above: keys that
  // grew old in between go too. What must hold: nothing older than its cutoff is left.
  const cutoff = new Date(Date.now() - days * 86_400_000);
  // Statements that wait for the purge's row locks (its two statements: key slices and run
  // slices), sampled beside it.
  const lockWaits = watchLockWaits(env.raw, ['%doomed%', `DELETE FROM ${s}."run" WHERE id = ANY%`]);
  const purging = retention.purge(days).finally(() => {
    done = true;
  });
  const started = performance.now();
  while (!done) beside.push(await advance());
  const result = await purging;
  const waited = await lockWaits.stop();
  const longestWait = waited[0]?.ms ?? 0;
  const { rows: left } = await side.owner.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${s}.checkpoint
     WHERE state IN ('completed', 'cancelled') AND updated_at < $1`,
    [cutoff],
  );
  const leftRows = Number(left[0].n);
  const seconds = (performance.now() - started) / 1000;
  repository.run = run;
  const a = summarize(alone);
  const b = summarize(beside);
  const r = b.p50 / a.p50;
  const sliceMs = summarize(slices.map(([from, to]) => to - from));
  // Each purge statement over 100 ms, with the longest advance that overlapped it.
  const long = slices
    .filter(([from, to]) => to - from > 100)
    .map(([from, to]) => ({
      ms: to - from,
      advanceMs: Math.max(
        0,
        ...advances.filter(([s0, e0]) => s0 < to && e0 > from).map(([s0, e0]) => e0 - s0),
      ),
    }));
  return {
    id: '12',
    title: 'Retention at size',
    about:
      `Retention purges the keys and runs of the big database older than ${days} days ` +
      `(${count(oldRows)} rows at this fill) in slices, while one attempt advances next to it; ` +
      'the same advance loop ran alone just before.',
    columns: ['advance', 'n', 'p50', 'p99', 'max'],
    rows: [
      ['alone', count(a.n), ms(a.p50), ms(a.p99), ms(a.max)],
      ['beside the purge', count(b.n), ms(b.p50), ms(b.p99), ms(b.max)],
    ],
    targets: [
      target(`advance beside the purge ÷ alone (p50): ${ratio(r)} (≤ 1.2x)`, r <= 1.2),
      target(
        `longest purge statement (rows locked that long at most): ${ms(result.longestSliceMs)} (≤ 100 ms)`,
        result.longestSliceMs <= 100,
      ),
      target(
        `no statement beside the purge waited over 100 ms for its locks (sampled every ` +
          `${lockWaits.sampleMs} ms): ` +
          (waited.length === 0
            ? 'none waited'
            : `${waited.length} waited, the longest ${ms(longestWait)}`),
        longestWait <= 100,
      ),
      target(
        `the purge reports what it removed: ${count(result.keys)} keys, ${count(result.failedItems)} failed items, ${count(result.runs)} runs (${count(oldRows)} old keys counted before it started, ${count(leftRows)} older than its cutoff left after)`,
        result.keys >= oldRows && leftRows === 0,
      ),
    ],
    notes: [
      `${count(result.slices)} statements in ${seconds.toFixed(0)} s ` +
        `(${count(result.keys / Math.max(seconds, 0.001))} keys/s); a statement took ` +
        `${ms(sliceMs.p50)} (p50), ${ms(sliceMs.p99)} (p99).`,
      long.length === 0
        ? 'No purge statement took over 100 ms.'
        : `Purge statements over 100 ms: ${long.length}. The advance beside each took, at the ` +
          `same time: ${long
            .map((each) => `${ms(each.advanceMs)} (beside ${ms(each.ms)})`)
            .join(', ')}. A purge slice locks only old finished keys no attempt owns (SKIP ` +
          'LOCKED): an advance that took as long as a slice was not waiting for its locks, the ' +
          'whole database stalled ' +
          `(the loop alone, with no purge, had one of ${ms(a.max)}).`,
    ],
    raw: {
      days,
      oldRows,
      leftRows,
      result: { ...result },
      slices: summaryJson(sliceMs),
      longSlices: long,
      lockWaits: waited.slice(0, 20).map((wait) => ({ query: wait.query, ms: wait.ms })),
      alone: summaryJson(a),
      beside: summaryJson(b),
      size: { ...size },
    },
  };
}
