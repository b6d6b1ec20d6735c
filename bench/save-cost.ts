// 1. The cost of one save against the size of the job's payload.
//
// The old service kept its checkpoint inside the job's JSON (the item list included): every
// save read that JSON and wrote it back whole. saveCheckpoint and advance write one narrow row
// of their own, so their cost must not grow with the payload. Each size gets its own job row
// (the payload) and its own checkpoint key; all five ways are interleaved in the same rounds.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { advanceAt, progressAt } from './advance.js';
import { bootApp } from './app.js';
import type { ChartData } from './chart.js';
import type { BenchSql } from './database.js';
import type { BenchEnv } from './env.js';
import { interleave, samplesOf, summarize, timed, type Summary, type Variant } from './harness.js';
import {
  count,
  latencyCells,
  ms,
  ratio,
  summaryJson,
  target,
  type Json,
  type Section,
} from './report.js';

/**
 * Rounds per size. The old way at 2 MB costs 60-200 ms a save, so fewer rounds there, and the
 * cheap ways take more samples per round, which keeps every cheap row near 1,000 samples and
 * the whole section under half a minute.
 */
const SIZES = [
  { label: '2 KB', bytes: 2 * 1024, rounds: 500, warmup: 50, cheapPerRound: 2 },
  { label: '200 KB', bytes: 200 * 1024, rounds: 250, warmup: 20, cheapPerRound: 4 },
  { label: '2 MB', bytes: 2 * 1024 * 1024, rounds: 80, warmup: 5, cheapPerRound: 12 },
] as const;

const WAYS = {
  old: 'old way: read + rewrite job data',
  save: 'saveCheckpoint',
  advance: 'advance (fenced)',
  bare: 'bare UPDATE (floor)',
  select: 'SELECT 1 (round trip)',
} as const;
type Way = keyof typeof WAYS;
const ORDER: readonly Way[] = ['old', 'save', 'advance', 'bare', 'select'];

/** Targets from the issue. */
const ADVANCE_OVER_FLOOR_MAX = 1.3;
const OLD_OVER_ADVANCE_MIN_AT_2MB = 100;
/** How far apart one way's p50 ratios to the floor may be across sizes and still count as flat. */
const FLAT_SPREAD_MAX = 1.25;

/** The old service's checkpoint fields, as it merged them into job.data. */
interface OldCheckpoint {
  currentBatchIndex: number;
  currentIndex: number;
  processedBatches: number;
  totalBatches: number;
  lastUpdate: string;
}

interface JobData {
  items: string[];
  checkpoint?: OldCheckpoint;
}

/** A job payload whose JSON is about `bytes` long: an item list of ids, as the old jobs had. */
function jobPayload(bytes: number): JobData {
  // Each id adds 39 bytes to the JSON: 36 characters, two quotes and a comma.
  const items = Array.from({ length: Math.ceil((bytes - 12) / 39) }, () => randomUUID());
  return { items };
}

/** The old way, re-created: read the job's JSON, merge the checkpoint in, write it all back. */
async function oldSave(
  pool: pg.Pool,
  sql: BenchSql,
  jobId: number,
  checkpoint: Omit<OldCheckpoint, 'lastUpdate'>,
): Promise<void> {
  const { rows } = await pool.query<{ data: JobData }>(sql.readJob, [jobId]);
  if (rows.length !== 1) throw new Error(`bench: job ${jobId} is missing`);
  const data = rows[0].data;
  data.checkpoint = { ...checkpoint, lastUpdate: new Date().toISOString() };
  await pool.query(sql.writeJob, [jobId, JSON.stringify(data)]);
}

export interface SaveCostResult {
  section: Section;
  chart: ChartData;
}

export async function measureSaveCost(env: BenchEnv): Promise<SaveCostResult> {
  const app = await bootApp({ url: env.url, schema: env.schema, poolSize: 4 });
  const results: Array<{ label: string; bytes: number; stats: Map<Way, Summary> }> = [];
  const raw: Record<string, Json> = {};
  try {
    for (const [index, size] of SIZES.entries()) {
      const jobId = index + 1;
      const payload = jobPayload(size.bytes);
      const bytes = Buffer.byteLength(JSON.stringify(payload));
      await env.raw.query(env.sql.insertJob, [jobId, JSON.stringify(payload)]);
      const key = `job:${jobId}`;
      const claim = await app.service.claim(key);
      let n = 0;
      const variants: Variant[] = [
        {
          label: 'old',
          measure: timed(() => oldSave(env.raw, env.sql, jobId, progressAt(++n))),
        },
        {
          label: 'save',
          measure: timed(() => app.service.saveCheckpoint(key, progressAt(++n))),
          perRound: size.cheapPerRound,
        },
        {
          label: 'advance',
          measure: timed(() => app.service.advance(key, claim.epoch, advanceAt(++n))),
          perRound: size.cheapPerRound,
        },
        {
          label: 'bare',
          measure: timed(() => env.raw.query(env.sql.bareUpdate, [0])),
          perRound: size.cheapPerRound,
        },
        {
          label: 'select',
          measure: timed(() => env.raw.query(env.sql.selectOne)),
          perRound: size.cheapPerRound,
        },
      ];
      env.progress(`1. save cost at ${size.label}: ${env.scaled(size.rounds, 5)} rounds`);
      const samples = await interleave(
        variants,
        env.scaled(size.rounds, 5),
        env.scaled(size.warmup, 2),
      );
      await app.service.complete(key, claim.epoch);
      const stats = new Map<Way, Summary>();
      const rawSize: Record<string, Json> = {};
      for (const way of ORDER) {
        const taken = samplesOf(samples, way);
        const summary = summarize(taken);
        stats.set(way, summary);
        rawSize[WAYS[way]] = summaryJson(summary, taken);
      }
      results.push({ label: size.label, bytes, stats });
      raw[size.label] = { payloadBytes: bytes, ways: rawSize };
    }
  } finally {
    await app.close();
  }

  const rows: string[][] = [];
  for (const result of results) {
    const floor = get(result.stats, 'bare');
    for (const way of ORDER) {
      const stats = get(result.stats, way);
      rows.push([
        `${result.label} (${count(result.bytes)} B)`,
        WAYS[way],
        ...latencyCells(stats, floor),
      ]);
    }
  }

  const targets = results.map((result) => {
    const over = get(result.stats, 'advance').p50 / get(result.stats, 'bare').p50;
    return target(
      `advance / bare UPDATE at ${result.label} (p50): ${ratio(over)} (target ≤ ${ADVANCE_OVER_FLOOR_MAX}x)`,
      over <= ADVANCE_OVER_FLOOR_MAX,
    );
  });
  const largest = results[results.length - 1];
  const cheaper = get(largest.stats, 'old').p50 / get(largest.stats, 'advance').p50;
  targets.push(
    target(
      `old way / advance at ${largest.label} (p50): ${ratio(cheaper)} (target ≥ ${OLD_OVER_ADVANCE_MIN_AT_2MB}x)`,
      cheaper >= OLD_OVER_ADVANCE_MIN_AT_2MB,
    ),
  );
  for (const way of ['save', 'advance'] as const) {
    // Judged on the ratio to the floor measured beside it, which cancels the drift of a shared
    // machine between the size blocks; the p50s themselves are printed too.
    const p50s = results.map((result) => get(result.stats, way).p50);
    const overFloor = results.map(
      (result) => get(result.stats, way).p50 / get(result.stats, 'bare').p50,
    );
    const spread = Math.max(...overFloor) / Math.min(...overFloor);
    targets.push(
      target(
        `${WAYS[way]} does not depend on the payload: p50 ${p50s.map(ms).join(' / ')} ` +
          `(× floor ${overFloor.map(ratio).join(' / ')}) at ${results.map((r) => r.label).join(' / ')}; ` +
          `spread of × floor ${ratio(spread)} (flat: ≤ ${FLAT_SPREAD_MAX}x)`,
        spread <= FLAT_SPREAD_MAX,
      ),
    );
  }

  return {
    section: {
      id: '1',
      title: 'Cost of one save against the job payload size',
      about:
        'One save at each payload size (an item list of ids in the job’s jsonb `data`). The old ' +
        'way reads the job’s JSON and writes it back whole with the checkpoint merged in (two ' +
        'statements, as the original service did); `saveCheckpoint` and a fenced `advance` go ' +
        'through CheckpointService (on the TypeORM DataSource’s pool); the floors run on a raw pg pool. The five ways are ' +
        'interleaved round by round at each size. Floor: the bare single-row UPDATE at the same size.',
      columns: ['job size', 'way', 'n', 'p50', 'p99', '× floor p50', '× floor p99'],
      rows,
      targets,
      notes: [
        '![Cost of one save against the job payload size](save-cost.svg)',
        ...(targets.every((each) => each.holds)
          ? []
          : ['Why the advance is slower than the floor: see Findings (section 7 measures it).']),
      ],
      raw,
    },
    chart: {
      title: 'Cost of one save against the job payload size (p50, whiskers to p99)',
      sizes: results.map((result) => ({ label: result.label, bytes: result.bytes })),
      series: ORDER.map((way) => ({
        label: WAYS[way],
        p50: results.map((result) => get(result.stats, way).p50),
        p99: results.map((result) => get(result.stats, way).p99),
      })),
    },
  };
}

function get(stats: Map<Way, Summary>, way: Way): Summary {
  const summary = stats.get(way);
  if (summary === undefined) throw new Error(`bench: no samples for ${way}`);
  return summary;
}
