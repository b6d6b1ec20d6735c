// 7. Diagnostics: where an advance's time goes, measured in the same run as the targets, so
// that what the report says about a target rests on figures taken beside it.
//
// Both sections send the library's own advance statement from a raw pg pool, as the library
// sends it and the other way (prepared or unnamed: an unnamed statement is parsed and planned
// on every call), beside CheckpointService.advance and the bare UPDATE. The gaps between those
// rows are the client's share (the library's call path: validation, a pooled connection, the
// statement watchdog), the share of
// parsing and planning, and the statement's own cost over the floor. EXPLAIN shows how the
// advance finds its row, on the bench's table and on one as the migrations leave it.
import { cpus } from 'node:os';
import type { ClaimedCheckpoint } from '../src/index.js';
import {
  advanceAt,
  advanceQuery,
  asLibrarySends,
  explain,
  libraryPrepares,
  otherWay,
} from './advance.js';
import { bootApp } from './app.js';
import {
  IDLE_MS,
  advanceArm,
  bareArm,
  clientCpuOf,
  latencyOf,
  libraryApp,
  slicesJson,
  rateOf,
  runSlices,
  scansOf,
  type Arm,
  type Slice,
} from './concurrency.js';
import { rawPool } from './database.js';
import type { BenchEnv } from './env.js';
import { interleave, samplesOf, summarize, timed, type Summary, type Variant } from './harness.js';
import { count, latencyCells, ms, ratio, summaryJson, type Json, type Section } from './report.js';

const ROUNDS = 1000;
const WARMUP_ROUNDS = 100;
const EXPLAINS = 200;
const WORKERS = 64;
/** Slices per way (the five ways take turns, forward then backward). */
const SLICE_ROUNDS = 4;
/** The targets of sections 1 and 5 that these figures speak to. */
const ADVANCE_OVER_FLOOR_MAX = 1.3;
const ADVANCE_OVER_CEILING_MIN = 0.8;

/** Sections 7a and 7b, and what their figures say, for the end of the report. */
export interface Diagnostics {
  sections: Section[];
  findings: string[];
}

/** The two ways of sending the advance, named after how the library sends it. */
function wayLabels(prepares: boolean) {
  return {
    asSent: `advance statement, raw pg, ${prepares ? 'prepared' : 'unnamed'} (as the library sends it)`,
    other: prepares
      ? 'advance statement, raw pg, unnamed (parsed and planned on every call)'
      : 'advance statement, raw pg, prepared (parsed and planned once per connection)',
  };
}

export async function measureDiagnostics(env: BenchEnv): Promise<Diagnostics> {
  const prepares = libraryPrepares(env.schema);
  const one = await oneJob(env, prepares);
  const many = await manyJobs(env, prepares);
  return { sections: [one.section, many.section], findings: findings(one, many, prepares) };
}

interface OneJob {
  section: Section;
  p50: Record<'bare' | 'service' | 'asSent' | 'other', number>;
  planningMs: number;
  scan: string;
}

interface ManyJobs {
  section: Section;
  rate: Record<'bare' | 'fresh' | 'seeded' | 'asSent' | 'other', number>;
  clientCpuUs: Record<'seeded' | 'asSent' | 'bare', number>;
  freshScans: string;
}

/** What the figures of 7a and 7b say about the advance, written from this run's figures. */
function findings(one: OneJob, many: ManyJobs, prepares: boolean): string[] {
  const { p50 } = one;
  const { rate, clientCpuUs: cpu } = many;
  const serviceOverFloor = p50.service / p50.bare;
  const libraryShare = rate.seeded / rate.bare;
  const statementShare = rate.asSent / rate.bare;
  const pkey = (scan: string) => scan.split(', then ').every((each) => each.includes('_pkey'));
  return [
    `**Where one advance’s time goes** (7a): the bare UPDATE takes ${ms(p50.bare)} (p50); the ` +
      `library’s advance statement sent raw, ${prepares ? 'prepared' : 'unnamed'} as the ` +
      `library sends it, ${ms(p50.asSent)} (${ratio(p50.asSent / p50.bare)}); ` +
      `CheckpointService.advance ${ms(p50.service)} (${ratio(serviceOverFloor)}, section 1’s ` +
      `target ≤ ${ADVANCE_OVER_FLOOR_MAX}x), so the library’s call path (validation, a pooled ` +
      `connection, the watchdog) adds ${ms(p50.service - p50.asSent)}. ` +
      (prepares
        ? `Unnamed, parsed and planned on every call, the statement takes ${ms(p50.other)}: ` +
          `preparing it saves ${ms(p50.other - p50.asSent)} per advance (EXPLAIN’s planning ` +
          `alone: ${ms(one.planningMs)}).`
        : `Prepared, it would take ${ms(p50.other)}: the library parses and plans it on every ` +
          `call, ${ms(p50.asSent - p50.other)} per advance (EXPLAIN’s planning alone: ` +
          `${ms(one.planningMs)}); sending it as a named statement would save that.`),
    `**How the advance finds its row:** ${one.scan} on the bench’s table (history and ` +
      `statistics, 7a), ${many.freshScans} on a table as the migrations leave it (7b). ` +
      (pkey(one.scan) && pkey(many.freshScans)
        ? 'The primary key in both: the cost of an advance does not grow with the number of ' +
          'running keys.'
        : 'Not the primary key everywhere: through another index the advance walks rows it ' +
          'does not need, more of them the more keys run.'),
    `**Many jobs at once** (7b, ${WORKERS} jobs): the library makes ${count(rate.seeded)} ` +
      `saves/s (${ratio(libraryShare)} of the bare ceiling, ${count(rate.fresh)} on a fresh ` +
      `table; section 5’s target ≥ ${ADVANCE_OVER_CEILING_MIN}x), its statement sent raw as it ` +
      `sends it ${count(rate.asSent)} (${ratio(statementShare)}), the other way ` +
      `${count(rate.other)} (${ratio(rate.other / rate.bare)}). Client CPU per save: ` +
      `${count(cpu.seeded)} µs through the library, ${count(cpu.asSent)} µs for its statement ` +
      `sent raw, ${count(cpu.bare)} µs for the bare UPDATE. PostgreSQL and this Node process ` +
      `share the machine’s ${cpus().length} cores here, so the client’s CPU is taken from the ` +
      'database’s' +
      (statementShare > libraryShare && cpu.seeded > cpu.asSent
        ? `: sent raw, the statement keeps ${ratio(statementShare)} of the ceiling, and the ` +
          `${count(cpu.seeded - cpu.asSent)} µs per save that the library’s call path adds ` +
          `bring the library to ${ratio(libraryShare)}. With the ` +
          'database on cores of its own, that CPU costs throughput only once this process ' +
          'fills a core.'
        : '.'),
  ];
}

async function oneJob(env: BenchEnv, prepares: boolean): Promise<OneJob> {
  const app = await bootApp({ url: env.url, schema: env.schema, poolSize: 4 });
  const labels = {
    bare: 'bare UPDATE (floor)',
    service: 'CheckpointService.advance (validation, a pooled connection, the statement)',
    ...wayLabels(prepares),
  } as const;
  const explained = {
    advancePlanning: 'EXPLAIN ANALYZE: planning time of the advance',
    advanceExecution: 'EXPLAIN ANALYZE: execution time of the advance',
    barePlanning: 'EXPLAIN ANALYZE: planning time of the bare UPDATE',
    bareExecution: 'EXPLAIN ANALYZE: execution time of the bare UPDATE',
  } as const;
  const stats = new Map<string, { summary: Summary; samples: number[] }>();
  let scan = '';
  try {
    const claims: Record<'service' | 'asSent' | 'other', ClaimedCheckpoint> = {
      service: await app.service.claim('diagnostics:service'),
      asSent: await app.service.claim('diagnostics:as-sent'),
      other: await app.service.claim('diagnostics:other'),
    };
    let n = 0;
    const variants: Variant[] = [
      { label: labels.bare, measure: timed(() => env.raw.query(env.sql.bareUpdate, [2])) },
      {
        label: labels.service,
        measure: timed(() =>
          app.service.advance(claims.service.key, claims.service.epoch, advanceAt(++n)),
        ),
      },
      {
        label: labels.asSent,
        measure: timed(() =>
          env.raw.query(asLibrarySends(advanceQuery(env.schema, claims.asSent, ++n))),
        ),
      },
      {
        label: labels.other,
        measure: timed(() => env.raw.query(otherWay(advanceQuery(env.schema, claims.other, ++n)))),
      },
    ];
    env.progress(`7a. one advance taken apart: ${env.scaled(ROUNDS, 50)} rounds`);
    const samples = await interleave(
      variants,
      env.scaled(ROUNDS, 50),
      env.scaled(WARMUP_ROUNDS, 5),
    );
    for (const label of Object.values(labels)) {
      const taken = samplesOf(samples, label);
      stats.set(label, { summary: summarize(taken), samples: taken });
    }

    const times: Record<keyof typeof explained, number[]> = {
      advancePlanning: [],
      advanceExecution: [],
      barePlanning: [],
      bareExecution: [],
    };
    for (let i = 0; i < env.scaled(EXPLAINS, 20); i++) {
      const advance = await explain(env.raw, advanceQuery(env.schema, claims.other, ++n));
      const bare = await explain(env.raw, { text: env.sql.bareUpdate, values: [2] });
      times.advancePlanning.push(advance.planningMs);
      times.advanceExecution.push(advance.executionMs);
      times.barePlanning.push(bare.planningMs);
      times.bareExecution.push(bare.executionMs);
      scan = advance.scan;
    }
    for (const [key, label] of Object.entries(explained)) {
      const taken = times[key as keyof typeof explained];
      stats.set(label, { summary: summarize(taken), samples: taken });
    }
    for (const each of Object.values(claims)) await app.service.complete(each.key, each.epoch);
  } finally {
    await app.close();
  }

  const get = (label: string) => {
    const found = stats.get(label);
    if (found === undefined) throw new Error(`bench: no summary for ${label}`);
    return found;
  };
  const floor = get(labels.bare).summary;
  const order = [...Object.values(labels), ...Object.values(explained)];
  const raw: Record<string, Json> = { scan };
  for (const label of order) raw[label] = summaryJson(get(label).summary, get(label).samples);
  const section: Section = {
    id: '7a',
    title: 'Diagnostics: one advance taken apart',
    about:
      'One job, interleaved round by round: CheckpointService.advance; the library’s own ' +
      'advance statement sent from a raw pg pool, as the library sends it and the other way ' +
      '(an unnamed statement is parsed and planned on every call, a prepared one once per ' +
      'connection); and the bare UPDATE. Then the server-side times from EXPLAIN ANALYZE, in ' +
      `rolled-back transactions. The advance finds its row by ${scan}.`,
    columns: ['what', 'n', 'p50', 'p99', '× floor p50', '× floor p99'],
    rows: order.map((label) => {
      const { summary } = get(label);
      return [label, ...latencyCells(summary, floor)];
    }),
    targets: [],
    notes: [],
    raw,
  };
  const p50 = (label: string) => get(label).summary.p50;
  return {
    section,
    p50: {
      bare: p50(labels.bare),
      service: p50(labels.service),
      asSent: p50(labels.asSent),
      other: p50(labels.other),
    },
    planningMs: p50(explained.advancePlanning),
    scan,
  };
}

async function manyJobs(env: BenchEnv, prepares: boolean): Promise<ManyJobs> {
  const labels = {
    bare: 'bare UPDATE, own row each (ceiling)',
    fresh: 'CheckpointService.advance, table as migrated (never analyzed)',
    seeded: 'CheckpointService.advance, table with history and statistics (as in 5)',
    ...wayLabels(prepares),
  } as const;
  const bare = bareArm(env, WORKERS, labels.bare);
  const fresh = await libraryApp(env, {
    schema: env.sql.freshSchema,
    workers: WORKERS,
    applicationName: 'bench_fresh',
    keyPrefix: 'diagnostics:fresh',
  });
  const seeded = await libraryApp(env, {
    schema: env.schema,
    workers: WORKERS,
    applicationName: 'bench_seeded',
    keyPrefix: 'diagnostics:seeded',
  });
  // Keys for the raw arms, claimed through the library like the others.
  const rawClaims: ClaimedCheckpoint[] = [];
  const rawPools: Array<{ end(): Promise<void> }> = [];
  /** A raw arm: the library's advance statement on a pool of its own, sent one way or the other. */
  const rawArm = (label: string, applicationName: string, send: typeof asLibrarySends): Arm => {
    const pool = rawPool(env.url, WORKERS, { applicationName, idleTimeoutMs: IDLE_MS });
    rawPools.push(pool);
    return {
      label,
      applicationName,
      kept: 0,
      save: (worker, n) => pool.query(send(advanceQuery(env.schema, rawClaims[worker], n))),
      scan: async () => (await explain(env.raw, advanceQuery(env.schema, rawClaims[0], 1))).scan,
    };
  };
  const arms = {
    bare,
    fresh: advanceArm(env, labels.fresh, env.sql.freshSchema, 'bench_fresh', fresh),
    seeded: advanceArm(env, labels.seeded, env.schema, 'bench_seeded', seeded),
    asSent: rawArm(labels.asSent, 'bench_as_sent', asLibrarySends),
    other: rawArm(labels.other, 'bench_other', otherWay),
  };
  type Way = keyof typeof arms;
  const forward = Object.keys(arms) as Way[];
  const rounds = env.scaled(SLICE_ROUNDS, 1);
  let slices: Map<Arm, Slice[]>;
  try {
    for (let worker = 0; worker < WORKERS; worker++) {
      rawClaims.push(await seeded.app.service.claim(`diagnostics:raw:${worker}`));
    }
    env.progress(`7b. ${WORKERS} concurrent jobs taken apart: ${rounds} slice(s) of 5 ways`);
    // Forward, then backward: drift over the section weighs on every way alike.
    const order = Array.from({ length: rounds }, (_, round) =>
      round % 2 === 0 ? forward : [...forward].reverse(),
    ).flatMap((ways) => ways.map((way) => arms[way]));
    slices = await runSlices(env, WORKERS, order);
  } finally {
    await fresh.app.close();
    await seeded.app.close();
    await bare.close();
    for (const pool of rawPools) await pool.end();
  }
  const of = (way: Way) => slices.get(arms[way]) ?? [];
  const ceiling = rateOf(of('bare'));
  const raw: Record<string, Json> = {};
  for (const way of forward) raw[labels[way]] = slicesJson(of(way));
  const section: Section = {
    id: '7b',
    title: `Diagnostics: ${WORKERS} concurrent jobs taken apart`,
    about:
      `${WORKERS} workers, each on its own row or key, as in section 5: the five ways take turns ` +
      `in ${rounds} slice(s) each (forward, then backward). The library arms advance through ` +
      'CheckpointService on a checkpoint table as the migrations leave it and on the bench’s ' +
      '(history and statistics); the raw arms send the library’s advance statement from a raw ' +
      'pg pool as in 7a. Client CPU is this Node process’s CPU time per save.',
    columns: [
      'way',
      'the advance finds its row by',
      'saves/s',
      'p50',
      'p99',
      'client CPU per save',
      '× ceiling (saves/s)',
    ],
    rows: forward.map((way) => {
      const latency = latencyOf(of(way));
      return [
        labels[way],
        scansOf(of(way)) === '' ? 'n/a' : scansOf(of(way)),
        `${count(rateOf(of(way)))}/s`,
        ms(latency.p50),
        ms(latency.p99),
        `${count(clientCpuOf(of(way)))} µs`,
        ratio(rateOf(of(way)) / ceiling),
      ];
    }),
    targets: [],
    notes: [],
    raw,
  };
  return {
    section,
    rate: {
      bare: rateOf(of('bare')),
      fresh: rateOf(of('fresh')),
      seeded: rateOf(of('seeded')),
      asSent: rateOf(of('asSent')),
      other: rateOf(of('other')),
    },
    clientCpuUs: {
      seeded: clientCpuOf(of('seeded')),
      asSent: clientCpuOf(of('asSent')),
      bare: clientCpuOf(of('bare')),
    },
    freshScans: scansOf(of('fresh')),
  };
}
