// 5. Many jobs at once: saves per second with 1, 8, 32 and 64 jobs advancing together, each on
// its own key, against the bare ceiling: as many workers doing bare UPDATEs, each on its own
// row, on a raw pg pool of the same size.
//
// The two ways cannot run at once (they would share the database, not compare with it), and
// load from elsewhere on the machine comes and goes in bursts of seconds, so the ways take
// short slices in turn, many times, in the order ABBA ABBA... PostgreSQL allows 100
// connections, and 64 workers need 65 TypeORM connections (one more for the library's session)
// and 64 raw ones: the two pools cannot both be full. So each pool closes the connections it
// leaves idle after IDLE_MS, and a slice starts only once the other way's connections are gone
// (counted in pg_stat_activity by application_name); connecting again is part of the warm-up.
import { cpus } from 'node:os';
import type { ClaimedCheckpoint } from '../src/index.js';
import { advanceAt, advanceQuery, explain } from './advance.js';
import { bootApp, type BenchApp } from './app.js';
import { rawPool } from './database.js';
import type { BenchEnv } from './env.js';
import { sleep, summarize, type Summary } from './harness.js';
import { count, ms, ratio, summaryJson, target, type Json, type Section } from './report.js';

const CONCURRENCY = [1, 8, 32, 64] as const;
/**
 * Slices per way and concurrency. The ratio of two ways on this 2-core machine moves by several
 * hundredths from one slice to the next; ten slices each keep a single burst from deciding it.
 */
const SLICES = 10;
/**
 * Discarded at the start of each slice: connections open, and each new backend loads the table's
 * catalog entries and prepares its statements. 300 ms was too short for 64 new backends on 2
 * cores: the counted window still held their start-up, which weighs more on the library's wider
 * table than on the narrow one, while deployed connections are long-lived.
 */
export const WARMUP_MS = 1000;
/** Counted: saves that complete within this window. */
export const WINDOW_MS = 1000;
/** Pools close connections idle this long, so that the next slice's pool has room. */
export const IDLE_MS = 100;
const ADVANCE_OVER_BARE_MIN = 0.8;

/** What one slice of one way counted. */
export interface Slice {
  saves: number;
  latencies: number[];
  /** CPU time of this (client) process per save, warm-up included: the Node side's share. */
  clientCpuUs: number;
  /** How the advance found its row (EXPLAIN before the slice), for the ways that advance. */
  scan?: string;
}

/** One way of saving at one concurrency, with a pool of its own. */
export interface Arm {
  label: string;
  /** application_name of the arm's connections. */
  applicationName: string;
  /** Connections the arm keeps open between slices (the library's session). */
  kept: number;
  save(worker: number, n: number): Promise<unknown>;
  /** How the advance finds its row right now, for the ways that advance. */
  scan?: () => Promise<string>;
}

/**
 * Runs `workers` loops of `save` as fast as they go for WARMUP_MS + WINDOW_MS and counts the
 * saves that complete inside the window (so that the rate is not biased by in-flight saves at
 * either edge), keeping their latencies.
 */
async function drive(
  workers: number,
  save: (worker: number, n: number) => Promise<unknown>,
): Promise<Slice> {
  const windowStart = performance.now() + WARMUP_MS;
  const windowEnd = windowStart + WINDOW_MS;
  const latencies: number[] = [];
  let all = 0;
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      for (let n = 1; performance.now() < windowEnd; n++) {
        const started = performance.now();
        await save(worker, n);
        const ended = performance.now();
        all += 1;
        if (ended >= windowStart && ended <= windowEnd) latencies.push(ended - started);
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { saves: latencies.length, latencies, clientCpuUs: (used.user + used.system) / all };
}

/** Waits until the connections of `arm` are down to the ones it keeps. */
async function untilClosed(env: BenchEnv, arm: Arm): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const { rows } = await env.raw.query<{ open: number }>(
      'SELECT count(*)::int AS open FROM pg_stat_activity WHERE application_name = $1',
      [arm.applicationName],
    );
    if (rows[0].open <= arm.kept) return;
    if (performance.now() > deadline) {
      throw new Error(`bench: ${rows[0].open} connections of ${arm.label} are still open`);
    }
    await sleep(IDLE_MS / 2);
  }
}

/**
 * Runs one slice per entry of `order` with `workers` workers, each slice once every other
 * arm's connections are closed. Returns the slices of each arm.
 */
export async function runSlices(
  env: BenchEnv,
  workers: number,
  order: readonly Arm[],
): Promise<Map<Arm, Slice[]>> {
  const arms = [...new Set(order)];
  const slices = new Map<Arm, Slice[]>(arms.map((arm) => [arm, []]));
  for (const arm of order) {
    for (const other of arms) if (other !== arm) await untilClosed(env, other);
    const scan = await arm.scan?.();
    const slice = await drive(workers, (worker, n) => arm.save(worker, n));
    slices.get(arm)?.push({ ...slice, scan });
  }
  return slices;
}

/** ABBA ABBA ... with `slices` slices of each arm: linear drift weighs on both alike. */
export function abba<T>(a: T, b: T, slices: number): T[] {
  return Array.from({ length: 2 * slices }, (_, i) => [a, b, b, a][i % 4]);
}

/** The bare ceiling's arm: each worker updates its own narrow row. */
export function bareArm(
  env: BenchEnv,
  workers: number,
  label: string,
): Arm & { close(): Promise<void> } {
  const applicationName = 'bench_bare';
  const pool = rawPool(env.url, workers, { applicationName, idleTimeoutMs: IDLE_MS });
  return {
    label,
    applicationName,
    kept: 0,
    save: (worker) => pool.query(env.sql.bareUpdate, [worker]),
    close: () => pool.end(),
  };
}

/**
 * An application whose TypeORM pool has one connection per worker plus the library's session,
 * and `workers` keys claimed in it: the library's arms advance them.
 */
export async function libraryApp(
  env: BenchEnv,
  options: { schema: string; workers: number; applicationName: string; keyPrefix: string },
): Promise<{ app: BenchApp; claims: ClaimedCheckpoint[] }> {
  const app = await bootApp({
    url: env.url,
    schema: options.schema,
    poolSize: options.workers + 1,
    applicationName: options.applicationName,
    idleTimeoutMs: IDLE_MS,
  });
  const claims: ClaimedCheckpoint[] = [];
  for (let worker = 0; worker < options.workers; worker++) {
    claims.push(await app.service.claim(`${options.keyPrefix}:${worker}`));
  }
  return { app, claims };
}

/** The arm that advances `claims` through CheckpointService. */
export function advanceArm(
  env: BenchEnv,
  label: string,
  schema: string,
  applicationName: string,
  { app, claims }: { app: BenchApp; claims: ClaimedCheckpoint[] },
): Arm {
  return {
    label,
    applicationName,
    kept: 1,
    save: (worker, n) =>
      app.service.advance(claims[worker].key, claims[worker].epoch, advanceAt(n)),
    scan: async () => (await explain(env.raw, advanceQuery(schema, claims[0], 1))).scan,
  };
}

/** Saves per second over the counted windows of `slices`. */
export function rateOf(slices: readonly Slice[]): number {
  return slices.reduce((sum, slice) => sum + slice.saves, 0) / ((slices.length * WINDOW_MS) / 1000);
}

/** Mean CPU time of this process per save (µs) over `slices`. */
export function clientCpuOf(slices: readonly Slice[]): number {
  return slices.reduce((sum, slice) => sum + slice.clientCpuUs, 0) / slices.length;
}

/** Latency per save over the counted windows of `slices`. */
export function latencyOf(slices: readonly Slice[]): Summary {
  return summarize(slices.flatMap((slice) => slice.latencies));
}

/** The plans the advance had over `slices`, in order, without repeats. */
export function scansOf(slices: readonly Slice[]): string {
  return [
    ...new Set(slices.flatMap((slice) => (slice.scan === undefined ? [] : [slice.scan]))),
  ].join(', then ');
}

/** The figures of some slices for results.json (latency samples are summarised: far too many). */
export function slicesJson(slices: readonly Slice[]): Json {
  return {
    savesPerSecond: Math.round(rateOf(slices)),
    savesPerSlice: slices.map((slice) => slice.saves),
    windowMs: WINDOW_MS,
    latencyMs: summaryJson(latencyOf(slices)),
    clientCpuUsPerSave: slices.map((slice) => Math.round(slice.clientCpuUs)),
    scans: scansOf(slices),
  };
}

export async function measureConcurrency(env: BenchEnv): Promise<Section> {
  const perWay = env.scaled(SLICES, 2);
  const rows: string[][] = [];
  const targets = [];
  const notes: string[] = [];
  const raw: Record<string, Json> = {};
  for (const workers of CONCURRENCY) {
    env.progress(`5. ${workers} concurrent job(s): ${perWay} slices of each way`);
    const bare = bareArm(env, workers, 'bare UPDATE, own row each (ceiling)');
    const library = await libraryApp(env, {
      schema: env.schema,
      workers,
      applicationName: 'bench_library',
      keyPrefix: `concurrent:${workers}`,
    });
    let slices: Map<Arm, Slice[]>;
    const advance = advanceArm(env, 'advance, own key each', env.schema, 'bench_library', library);
    try {
      slices = await runSlices(env, workers, abba(bare, advance, perWay));
      for (const claim of library.claims)
        await library.app.service.complete(claim.key, claim.epoch);
    } finally {
      await library.app.close();
      await bare.close();
    }
    const of = (arm: Arm) => slices.get(arm) ?? [];
    const ceiling = rateOf(of(bare));
    for (const arm of [bare, advance]) {
      const latency = latencyOf(of(arm));
      rows.push([
        count(workers),
        arm.label,
        `${count(rateOf(of(arm)))}/s`,
        ms(latency.p50),
        ms(latency.p99),
        `${count(clientCpuOf(of(arm)))} µs`,
        ratio(rateOf(of(arm)) / ceiling),
      ]);
    }
    raw[`${workers} workers`] = {
      [bare.label]: slicesJson(of(bare)),
      [advance.label]: slicesJson(of(advance)),
    };
    const share = rateOf(of(advance)) / ceiling;
    if (share < ADVANCE_OVER_BARE_MIN) {
      notes.push(
        `At ${workers} job(s) the advance takes ${count(clientCpuOf(of(advance)))} µs of client ` +
          `CPU per save against ${count(clientCpuOf(of(bare)))} µs for the bare UPDATE; ` +
          `PostgreSQL and this Node process share the machine’s ${cpus().length} cores, so that ` +
          'CPU is taken from the database’s. Section 7 takes the advance apart (see Findings).',
      );
    }
    targets.push(
      target(
        `${workers} job(s): advance / bare ceiling = ${ratio(share)} ` +
          `(${count(rateOf(of(advance)))} vs ${count(ceiling)} saves/s; target ≥ ${ADVANCE_OVER_BARE_MIN}x)`,
        share >= ADVANCE_OVER_BARE_MIN,
      ),
    );
  }
  return {
    id: '5',
    title: 'Many jobs at once',
    about:
      `N jobs advance together, each on its own claimed key, as fast as they can; the ceiling is N ` +
      `workers doing bare single-row UPDATEs, each on its own row. TypeORM's pool is sized N + 1 ` +
      `(the library's session holds one), the raw pg pool N. The two ways take turns in ` +
      `${perWay} slices each (ABBA order), each slice ${WARMUP_MS} ms of warm-up and a ` +
      `${WINDOW_MS} ms counted window; latency is per save; client CPU is this Node process’s ` +
      'CPU time per save. The ratio is of saves per second to the bare ceiling.',
    columns: ['jobs', 'way', 'saves/s', 'p50', 'p99', 'client CPU per save', '× ceiling (saves/s)'],
    rows,
    targets,
    notes,
    raw,
  };
}
