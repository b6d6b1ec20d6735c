// 15. Many processes (issue 20, part 3): 32 worker processes (bench/fleet-worker.ts), each with a
// small TypeORM pool and pg-boss, each working 8 jobs at once, every job a long run of small
// batches. Measured, side by side in the same processes:
// - saves per second of the library's batch loops against the same advance UPDATEs sent from a
//   raw pg pool of the same connections (the two ways take turns in ABBA slices; the other way
//   waits at its next save);
// - lease renewals per second, counted by each process's TypeORM logger, against
//   processes ÷ (TTL/3);
// - the reaper's statements per second, counted the same way, in two quiet windows (no slice
//   driven): with the 256 running keys of the fleet and with 10,000 more running keys (owned by
//   a live session of the bench); one process leads and looks, every process asks whether it
//   leads. How long one look and one question take at each size.
import { fileURLToPath } from 'node:url';
import { PgBoss } from 'pg-boss';
import { checkpointSql } from '../src/checkpoint.sql.js';
import { Child } from '../test/support/process.js';
import { bootApp } from './app.js';
import { FLEET_QUEUE } from './jobs.js';
import type { BenchEnv } from './env.js';
import {
  countAll,
  drive,
  sweepCeiling,
  WARMUP_MS,
  WINDOW_MS,
  type Counts,
} from './fleet-commands.js';
import { sleep, summarize } from './harness.js';
import { count, ms, ratio, summaryJson, target, type Json, type Section } from './report.js';

/** BENCH_PROCESSES: fewer processes, for working on the section (never for results). */
const PROCESSES = Number(process.env.BENCH_PROCESSES ?? 32);
const KEYS = 8;
/** Processes booting at once. */
const BOOTING = 4;
/** TypeORM's pool of each process: the lease session and one connection for statements. */
const POOL = 2;
const BATCH_SIZE = 10;
/** Short enough that renewals are counted in the hundreds within the section. */
const LEASE_TTL_MS = 6000;
const SLICES = 6;
/** The second number of running keys the reaper is counted at (the fleet's own, plus these). */
const MORE_RUNNING = 10_000;
const REAPER_WINDOW_MS = 12_000;
const REAP_INTERVAL_MS = 500;
const LOOK_SAMPLES = 30;
const RENEWAL_TOLERANCE = 0.15;
const REAPER_GROWTH_MAX = 1.1;
const LIBRARY_OVER_RAW_MIN = 0.8;

export async function measureProcesses(env: BenchEnv): Promise<Section> {
  const schema = `${env.schema}_fleet`;
  const processes = PROCESSES;
  const slices = env.scaled(SLICES, 2);
  const reaperWindowMs = env.scaled(REAPER_WINDOW_MS, 4000);
  await env.raw.query(`CREATE SCHEMA "${schema}"`);
  // The library's migrations and pg-boss's schema, once, before the fleet boots.
  await (await bootApp({ url: env.url, schema, poolSize: 2 })).close();
  const boss = new PgBoss({
    connectionString: env.url,
    schema: `${schema}_boss`,
    supervise: false,
    schedule: false,
    max: 2,
  });
  boss.on('error', () => undefined);
  await boss.start();
  const script = fileURLToPath(new URL('./fleet-worker.js', import.meta.url));
  const fleet: Child[] = [];
  const holder = await env.raw.connect();
  try {
    env.progress(`15. many processes: booting ${processes} worker processes`);
    // A few boot at a time: 32 Nest applications booting at once on a small machine each
    // take minutes, and their migration checks queue behind one another.
    const start = (index: number) =>
      Child.startScript(
        script,
        {
          DATABASE_URL: env.url,
          SCHEMA: schema,
          PROCESS: String(index),
          KEYS: String(KEYS),
          POOL: String(POOL),
          BATCH_SIZE: String(BATCH_SIZE),
          LEASE_TTL_MS: String(LEASE_TTL_MS),
        },
        { stdin: true },
      );
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(BOOTING, processes) }, async () => {
        while (next < processes) {
          const child = start(next++);
          fleet.push(child);
          await child.waitFor((line) => line === 'ready', 900_000);
        }
      }),
    );
    for (let job = 0; job < processes * KEYS; job++) await boss.send(FLEET_QUEUE, {});
    await untilRunning(env, schema, processes * KEYS);
    const connections = await env.raw.query<{ name: string; open: number }>(
      `SELECT application_name AS name, count(*)::int AS open FROM pg_stat_activity
        WHERE application_name LIKE 'bench_fleet%' GROUP BY 1 ORDER BY 1`,
    );

    env.progress(`15. many processes: ${slices} slices of each way`);
    // A bare LISTEN on the progress channel (no watcher: no process of the fleet watches).
    let heard = 0;
    holder.on('notification', () => (heard += 1));
    await holder.query(`LISTEN "${schema}_checkpoint"`);
    const before = await countAll(fleet);
    const saves = { library: [] as number[], raw: [] as number[] };
    const cpuPerSave = { library: [] as number[], raw: [] as number[] };
    const notifies = { library: [] as number[], raw: [] as number[] };
    const notifications = { library: [] as number[], raw: [] as number[] };
    for (let slice = 0; slice < 2 * slices; slice++) {
      const way = (['library', 'raw', 'raw', 'library'] as const)[slice % 4];
      const heardBefore = heard;
      const sliceStart = performance.now();
      const counted = await drive(fleet, way);
      notifications[way].push((heard - heardBefore) / ((performance.now() - sliceStart) / 1000));
      saves[way].push(counted.saves);
      cpuPerSave[way].push(counted.cpuPerSaveUs);
      notifies[way].push(counted.notifiesPerSecond);
    }
    const afterSlices = await countAll(fleet);
    const sweep = await sweepCeiling(env, fleet, slices);
    // The reaper at each size in a quiet window of the same length: while slices are driven,
    // the fleet's timers fire late on a busy machine, and the rates would differ by the load.
    const fewFrom = await countAll(fleet);
    await sleep(reaperWindowMs);
    const fewTo = await countAll(fleet);
    const looksFew = await timeLooks(env, schema);
    const asksFew = await timeAsks(env, schema);

    env.progress(`15. many processes: the reaper with ${count(MORE_RUNNING)} more running keys`);
    const owner = await holder.query<{ pid: number; started: string }>(
      `SELECT pg_backend_pid() AS pid, backend_start::text AS started
         FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
    );
    await holder.query(
      `INSERT INTO "${schema}".checkpoint (key, state, epoch, running_epoch, attempt, owner, queue,
          job_id, dispatch, total_items, current_index, attempt_started_at, owner_pid,
          owner_started, lease_expires_at, created_at, updated_at)
       SELECT 'running:' || g, 'running', 1, 1, 1, 'bench', 'live', g::text, 1, 100000, 0, now(),
              $1, $2::timestamptz, now() + interval '1 hour', now(), now()
       FROM generate_series(1, ${MORE_RUNNING}) g`,
      [owner.rows[0].pid, owner.rows[0].started],
    );
    await holder.query(`ANALYZE "${schema}".checkpoint`);
    const manyFrom = await countAll(fleet);
    await sleep(reaperWindowMs);
    const manyTo = await countAll(fleet);
    const looksMany = await timeLooks(env, schema);
    const asksMany = await timeAsks(env, schema);

    const rate = (from: Counts, to: Counts, field: 'renewals' | 'looks' | 'asks') =>
      (to[field] - from[field]) / ((to.at - from.at) / 1000);
    const renewals = rate(before, afterSlices, 'renewals');
    const expectedRenewals = processes / (LEASE_TTL_MS / 3 / 1000);
    const looksAtFew = rate(fewFrom, fewTo, 'looks');
    const looksAtMany = rate(manyFrom, manyTo, 'looks');
    const asksAtFew = rate(fewFrom, fewTo, 'asks');
    const asksAtMany = rate(manyFrom, manyTo, 'asks');
    const reaperAtFew = looksAtFew + asksAtFew;
    const reaperAtMany = looksAtMany + asksAtMany;
    // One leader looks; every process asks at each tick.
    const expectedLooks = 1000 / REAP_INTERVAL_MS;
    const expectedAsks = processes * (1000 / REAP_INTERVAL_MS);
    const perSecond = (samples: number[]) =>
      samples.reduce((sum, n) => sum + n, 0) / ((samples.length * WINDOW_MS) / 1000);
    const median = (values: number[]) => Math.round(summarize(values).p50);
    const cpuLibrary = median(cpuPerSave.library);
    const cpuRaw = median(cpuPerSave.raw);
    const notifiesLibrary = summarize(notifies.library).p50;
    const notifiesRaw = summarize(notifies.raw).p50;
    const heardLibrary = summarize(notifications.library).p50;
    const heardRaw = summarize(notifications.raw).p50;
    const library = perSecond(saves.library);
    const rawRate = perSecond(saves.raw);
    const few = processes * KEYS;
    const many = few + MORE_RUNNING;
    const lookFew = summarize(looksFew);
    const lookMany = summarize(looksMany);
    const askFew = summarize(asksFew);
    const askMany = summarize(asksMany);
    const perProcess = connections.rows.map((row) => `${row.name} ${row.open}`).join(', ');
    const totalConnections = connections.rows.reduce((sum, row) => sum + row.open, 0);
    const raw: Record<string, Json> = {
      processes,
      keysPerProcess: KEYS,
      batchSize: BATCH_SIZE,
      leaseTtlMs: LEASE_TTL_MS,
      connections: Object.fromEntries(connections.rows.map((row) => [row.name, row.open])),
      savesPerSlice: { library: saves.library, raw: saves.raw, windowMs: WINDOW_MS },
      savesPerSecond: { library: Math.round(library), raw: Math.round(rawRate) },
      clientCpuPerSaveUs: { library: cpuLibrary, raw: cpuRaw },
      notifyStatementsPerSecond: { library: notifies.library, raw: notifies.raw },
      notificationsHeardPerSecond: { library: notifications.library, raw: notifications.raw },
      ceiling: sweep.map((point) => ({
        processes: point.processes,
        library: Math.round(point.library),
        raw: Math.round(point.raw),
      })),
      renewalsPerSecond: Math.round(renewals * 100) / 100,
      expectedRenewalsPerSecond: expectedRenewals,
      reaperLooksPerSecond: {
        [`${few} running keys`]: Math.round(looksAtFew * 100) / 100,
        [`${many} running keys`]: Math.round(looksAtMany * 100) / 100,
      },
      reaperAsksPerSecond: {
        [`${few} running keys`]: Math.round(asksAtFew * 100) / 100,
        [`${many} running keys`]: Math.round(asksAtMany * 100) / 100,
      },
      reaperLookMs: {
        [`${few} running keys`]: summaryJson(lookFew, looksFew),
        [`${many} running keys`]: summaryJson(lookMany, looksMany),
      },
      reaperAskMs: {
        [`${few} running keys`]: summaryJson(askFew, asksFew),
        [`${many} running keys`]: summaryJson(askMany, asksMany),
      },
    };
    return {
      id: '15',
      title: 'Many processes',
      about:
        `${processes} worker processes, each a Nest application with a TypeORM pool of ${POOL} ` +
        `connections (the lease session and one for statements), pg-boss (pool of 2) and a ` +
        `decorated job working ${KEYS} pg-boss jobs at once, each a long run of batches of ` +
        `${BATCH_SIZE} items that write nothing but their checkpoint (leaseTtlMs ` +
        `${LEASE_TTL_MS} ms). Saves: the ${processes * KEYS} batch loops against the library's ` +
        `same advance UPDATE sent by ${KEYS} loops per process on a raw pg pool of ` +
        `${POOL - 1} connection(s) in the same processes, on keys of their own; the two ways take ` +
        `turns in ${slices} slices each (ABBA), ${WARMUP_MS} ms of warm-up and a ${WINDOW_MS} ms ` +
        "counted window, the other way waiting at its next save. Renewals and the reaper's " +
        "statements: those each process's TypeORM logger saw, summed over the fleet (the reaper's " +
        `in two quiet windows of ${reaperWindowMs / 1000} s, no slice driven). A look's and a ` +
        "question's time: the same statement sent by the bench beside the fleet (the question " +
        'in a transaction rolled back, so that the bench never leads).',
      columns: ['what', 'measured', 'expected or floor', 'ratio'],
      rows: [
        [
          `saves/s, ${processes * KEYS} decorated batch loops`,
          `${count(library)}/s`,
          `${count(rawRate)}/s (raw pool, same UPDATE)`,
          ratio(library / rawRate),
        ],
        [
          'lease renewal statements/s',
          `${renewals.toFixed(2)}/s`,
          `${expectedRenewals.toFixed(2)}/s (processes ÷ TTL/3)`,
          ratio(renewals / expectedRenewals),
        ],
        ...[
          [few, looksAtFew, asksAtFew],
          [many, looksAtMany, asksAtMany],
        ].flatMap(([keys, looks, asks]) => [
          [
            `reaper looks/s (the leader's), ${count(keys)} running keys`,
            `${looks.toFixed(2)}/s`,
            `${expectedLooks}/s (one leader × 2/s)`,
            ratio(looks / expectedLooks),
          ],
          [
            `reaper questions/s (every process's), ${count(keys)} running keys`,
            `${asks.toFixed(1)}/s`,
            `${expectedAsks}/s (processes × 2/s)`,
            ratio(asks / expectedAsks),
          ],
        ]),
        [
          `reaper statements/s, ${count(many)} running keys`,
          `${reaperAtMany.toFixed(1)}/s`,
          `${reaperAtFew.toFixed(1)}/s (at ${count(few)})`,
          ratio(reaperAtMany / reaperAtFew),
        ],
        [`one reaper look (p50), ${count(few)} running keys`, ms(lookFew.p50), '', ''],
        [
          `one reaper look (p50), ${count(many)} running keys`,
          ms(lookMany.p50),
          ms(lookFew.p50),
          ratio(lookMany.p50 / lookFew.p50),
        ],
        [`one question (p50), ${count(few)} running keys`, ms(askFew.p50), '', ''],
        [
          `one question (p50), ${count(many)} running keys`,
          ms(askMany.p50),
          ms(askFew.p50),
          ratio(askMany.p50 / askFew.p50),
        ],
        [
          'progress announcement statements/s (median of slices)',
          `${notifiesLibrary.toFixed(1)}/s`,
          `${notifiesRaw.toFixed(1)}/s (raw pool's slices)`,
          '',
        ],
        [
          'progress notifications heard/s by a bare LISTEN (median of slices)',
          `${heardLibrary.toFixed(1)}/s`,
          `${heardRaw.toFixed(1)}/s (raw pool's slices)`,
          '',
        ],
        [
          "the workers' CPU time per save (median of slices)",
          `${count(cpuLibrary)} µs`,
          `${count(cpuRaw)} µs (raw pool)`,
          ratio(cpuLibrary / cpuRaw),
        ],
        ...[...sweep, { processes, library, raw: rawRate }].map((point) => [
          `ceiling: saves/s with ${point.processes} of the ${processes} processes saving`,
          `${count(point.library)}/s`,
          `${count(point.raw)}/s (raw pool)`,
          ratio(point.library / point.raw),
        ]),
        ['connections of the fleet', count(totalConnections), perProcess, ''],
      ],
      targets: [
        target(
          `saves/s of ${processes * KEYS} batch loops in ${processes} processes / the same ` +
            `UPDATEs from a raw pool: ${ratio(library / rawRate)} (${count(library)} vs ` +
            `${count(rawRate)}/s; target ≥ ${LIBRARY_OVER_RAW_MIN}x)`,
          library / rawRate >= LIBRARY_OVER_RAW_MIN,
        ),
        target(
          `lease renewals: ${renewals.toFixed(2)}/s for ${processes} processes, against ` +
            `processes ÷ (TTL/3) = ${expectedRenewals.toFixed(2)}/s (target within ` +
            `${RENEWAL_TOLERANCE * 100}%)`,
          Math.abs(renewals / expectedRenewals - 1) <= RENEWAL_TOLERANCE,
        ),
        target(
          `the reaper's statements/s do not grow with the running keys: ` +
            `${reaperAtFew.toFixed(1)}/s at ${count(few)}, ${reaperAtMany.toFixed(1)}/s at ` +
            `${count(many)} (target ≤ ${REAPER_GROWTH_MAX}x)`,
          reaperAtMany / reaperAtFew <= REAPER_GROWTH_MAX,
        ),
        target(
          `one process looks at a time: ${looksAtFew.toFixed(2)}/s and ` +
            `${looksAtMany.toFixed(2)}/s looks for ${processes} processes (target ≤ ` +
            `${REAPER_GROWTH_MAX} × ${expectedLooks}/s)`,
          Math.max(looksAtFew, looksAtMany) <= REAPER_GROWTH_MAX * expectedLooks,
        ),
      ],
      notes: [
        `A progress announcement is one statement on a process's lease session for all its ` +
          `keys that changed in the last 100 ms. Advances alone are notified only while some ` +
          `process watches (none here: the bench's LISTEN is no watcher), so the statement ` +
          `notifies nothing and commits nothing; a NOTIFY would be a transaction whose commit ` +
          `flushes WAL, serialised with every notifying commit of the cluster. After a statement ` +
          `that found nobody watching, a process holds its advances back for a second: about ` +
          `one statement a second per process, instead of ten.`,
        `Each look reads the running keys that record a pg-boss job and checks each owner's ` +
          `session in pg_stat_activity: its time grows with the running keys ` +
          `(${ms(lookFew.p50)} at ${count(few)}, ${ms(lookMany.p50)} at ${count(many)}), so ` +
          `one process looks at a time (the row of the reaper table names it). The others ask ` +
          `at each tick, in a single-row UPDATE whose condition fails without a write, whether ` +
          `the leader is still there (${ms(askMany.p50)}), and one leads at its next tick when ` +
          `the leader's session is gone, or 3 s after a frozen leader's last question.`,
      ],
      raw,
    };
  } finally {
    await Promise.all(fleet.map((child) => child.kill('SIGKILL')));
    // The connection goes back to the pool: it must listen no more.
    await holder.query('UNLISTEN *').catch(() => undefined);
    holder.release();
    await boss.stop({ graceful: false });
    await env.raw.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await env.raw.query(`DROP SCHEMA IF EXISTS "${schema}_boss" CASCADE`);
  }
}

/**
 * Waits until `n` fleet jobs are running (each child has taken its jobs). Bounded by progress,
 * not by a total: on a loaded machine the processes' polls come late, but each one takes a job.
 */
async function untilRunning(env: BenchEnv, schema: string, n: number): Promise<void> {
  const STALLED_MS = 120_000;
  let seen = -1;
  let movedAt = performance.now();
  let toldAt = performance.now();
  for (;;) {
    const { rows } = await env.raw.query<{ running: number }>(
      `SELECT count(*)::int AS running FROM "${schema}".checkpoint
        WHERE state = 'running' AND queue = $1`,
      [FLEET_QUEUE],
    );
    const running = rows[0].running;
    if (running >= n) return;
    if (running > seen) {
      seen = running;
      movedAt = performance.now();
    }
    if (performance.now() - toldAt > 15_000) {
      env.progress(`15. many processes: ${running} of ${n} jobs running`);
      toldAt = performance.now();
    }
    if (performance.now() - movedAt > STALLED_MS) {
      throw new Error(`bench: ${running} of ${n} fleet jobs running, none more for 120 s`);
    }
    await sleep(200);
  }
}

/**
 * How long the reaper's question takes for a process that does not lead (LOOK_SAMPLES times):
 * in a transaction rolled back, so that the bench never takes the lead from the fleet.
 */
async function timeAsks(env: BenchEnv, schema: string): Promise<number[]> {
  const ask = checkpointSql(schema).leadReaper('bench:asking', null, null, 3);
  const client = await env.raw.connect();
  const samples: number[] = [];
  try {
    for (let i = 0; i < LOOK_SAMPLES; i++) {
      await client.query('BEGIN');
      const started = performance.now();
      await client.query(ask.text, ask.values);
      samples.push(performance.now() - started);
      await client.query('ROLLBACK');
    }
  } finally {
    client.release();
  }
  return samples;
}

/** How long the reaper's look takes, sent by the bench (LOOK_SAMPLES times). */
async function timeLooks(env: BenchEnv, schema: string): Promise<number[]> {
  const look = checkpointSql(schema).orphans();
  const samples: number[] = [];
  for (let i = 0; i < LOOK_SAMPLES; i++) {
    const started = performance.now();
    await env.raw.query(look.text, look.values);
    samples.push(performance.now() - started);
  }
  return samples;
}
