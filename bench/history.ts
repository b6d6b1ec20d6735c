// 11. History does not slow the present, and 12. retention at that size (issue 20).
//
// Two schemas side by side: one filled as a year of use fills it (bench/fill.ts: 10M completed
// keys, 100k runs of 100 chunks, 1M failed items, 10k running keys), one with the same 10k
// running keys and a little else (about 10,000 rows). Every operation runs on both, interleaved
// round by round; the ratio is big ÷ small of the medians. Then section 12 purges the big
// schema's oldest quarter (about 5M rows) while one attempt advances next to it (bench/purge.ts).
//
// BENCH_FILL_SCALE (default 1) scales the year's keys, runs and ledger down for a quicker try
// (0.01: 100k keys); results are reported at full size. BENCH_HISTORY_SCHEMA names a big schema
// to keep between runs (filled once, never dropped): for working on the bench, not for results.
import pg from 'pg';
import { CheckpointRuns, CheckpointService, FailedItemsService } from '../src/index.js';
import { checkpointSql } from '../src/checkpoint.sql.js';
import { checkpointHttpSql } from '../src/http/checkpoint-http.sql.js';
import { decodeCursor, encodeCursor, TIME_AND_KEY } from '../src/page-cursor.js';
import { bootApp, type BenchApp } from './app.js';
import type { BenchEnv } from './env.js';
import { fillHistory, YEAR, type FillSize } from './fill.js';
import { measurePurge } from './purge.js';
import { interleave, samplesOf, summarize, timed, type Variant } from './harness.js';
import { count, ms, ratio, summaryJson, target, type Json, type Section } from './report.js';

const scale = Number(process.env.BENCH_FILL_SCALE ?? '1');
const keep = process.env.BENCH_HISTORY_SCHEMA;
const ROUNDS = 60;
const WARMUP = 5;
const DEEP = 100_000;
const HEAD = { state: null, runId: null, queue: null, search: null };

/** The big fill at this run's scale. */
function bigSize(): FillSize {
  const scaled = (n: number) => Math.max(1, Math.round(n * scale));
  return {
    keys: scaled(YEAR.keys),
    runs: scaled(YEAR.runs),
    chunksPerRun: YEAR.chunksPerRun,
    ledgerRows: scaled(YEAR.ledgerRows),
    runningKeys: YEAR.runningKeys,
  };
}

/**
 * The small database: the same running keys, a small ledger, and just enough runs of the same
 * shape for a page of 50 and more (about 16,000 rows).
 */
const SMALL: FillSize = {
  keys: 0,
  runs: 60,
  chunksPerRun: 100,
  ledgerRows: 1000,
  runningKeys: YEAR.runningKeys,
};

interface Side {
  label: 'big' | 'small';
  schema: string;
  app: BenchApp;
  /** A connection of the bench's own: it owns the running keys (its session is alive). */
  owner: pg.Client;
  pid: number;
  started: string;
  /** Tokens of a page about DEEP rows (or as deep as the table goes) into each list. */
  deep: Record<string, string>;
  /** A run in the middle of the fill, and an item 80% into the big ledger key. */
  runId: string;
  ledgerDepth: number;
  /** A key this process claimed, for the advance. */
  key: string;
  epoch: number;
  claims: number;
}

export async function measureHistory(
  env: BenchEnv,
): Promise<{ history: Section; retention: Section }> {
  const size = bigSize();
  const bigSchema = keep ?? `${env.schema}_big`;
  const sides: Side[] = [];
  try {
    for (const [label, schema, fill] of [
      ['big', bigSchema, size],
      ['small', `${env.schema}_small`, SMALL],
    ] as const) {
      sides.push(await prepare(env, label, schema, fill));
    }
    const history = await measureReads(env, sides, size);
    const retention = await measurePurge(env, sides[0], size);
    return { history, retention };
  } finally {
    for (const side of sides) {
      await side.app.close();
      await side.owner.end();
    }
    const drop = keep === undefined ? [bigSchema] : [];
    for (const schema of [...drop, `${env.schema}_small`]) {
      await env.raw.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  }
}

async function prepare(
  env: BenchEnv,
  label: 'big' | 'small',
  schema: string,
  size: FillSize,
): Promise<Side> {
  const owner = new pg.Client({ connectionString: env.url, application_name: 'bench-owner' });
  await owner.connect();
  const [identity] = (
    await owner.query<{ pid: number; started: string }>(
      `SELECT pg_backend_pid() AS pid, backend_start::text AS started
       FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
    )
  ).rows;
  const app = await bootApp({ url: env.url, schema, poolSize: 3 });
  const { rows } = await owner.query<{ n: string }>(
    `SELECT count(*) AS n FROM "${schema}".checkpoint`,
  );
  if (Number(rows[0].n) === 0) {
    const started = performance.now();
    env.progress(
      `section 11: filling ${label} (${count(size.keys)} keys, ${count(size.runs)} runs)`,
    );
    await fillHistory(owner, schema, size, identity);
    env.progress(
      `section 11: ${label} filled in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
  } else {
    // A kept schema: its running keys take this run's owner, so that the sweep finds them alive.
    await owner.query(
      `UPDATE "${schema}".checkpoint SET owner_pid = $1, owner_started = $2::timestamptz,
         lease_expires_at = now() + interval '1 hour'
       WHERE state = 'running' AND key LIKE 'running:%'`,
      [identity.pid, identity.started],
    );
  }
  const deepRow = async (text: string) => {
    const found = await owner.query<{ at: string; id: string }>(text);
    const row = found.rows[0];
    return row === undefined ? '' : encodeCursor([row.at, row.id]);
  };
  // 80% into the big ledger key, leaving a full page after it on the small database too.
  const bigLedger = Math.floor(size.ledgerRows * 0.9);
  const ledgerDepth = Math.max(0, Math.min(Math.floor(bigLedger * 0.8), bigLedger - 600));
  const depth = (total: number) => Math.max(0, Math.min(DEEP, total - 100));
  const keysTotal = size.keys + size.runs * size.chunksPerRun + size.runningKeys;
  const s = `"${schema}"`;
  const deep = {
    keys: await deepRow(
      `SELECT created_at::text AS at, key AS id FROM ${s}.checkpoint
       ORDER BY created_at DESC, key DESC OFFSET ${depth(keysTotal)} LIMIT 1`,
    ),
    completed: await deepRow(
      `SELECT created_at::text AS at, key AS id FROM ${s}.checkpoint WHERE state = 'completed'
       ORDER BY created_at DESC, key DESC OFFSET ${depth(keysTotal - size.runningKeys)} LIMIT 1`,
    ),
    runs: await deepRow(
      `SELECT created_at::text AS at, id FROM ${s}.run
       ORDER BY created_at DESC, id DESC OFFSET ${depth(size.runs)} LIMIT 1`,
    ),
    ledger: encodeCursor(['ledger:big', ledgerDepth]),
  };
  const key = `bench:${label}:advance`;
  const claim = await app.service.claim(key, { totalItems: 1e12 });
  return {
    label,
    schema,
    app,
    owner,
    pid: identity.pid,
    started: identity.started,
    deep,
    runId: `run:${Math.ceil(size.runs / 2)}`,
    ledgerDepth,
    key,
    epoch: claim.epoch,
    claims: 0,
  };
}

interface Operation {
  name: string;
  run: (side: Side) => Promise<unknown>;
  perRound?: number;
}

async function measureReads(env: BenchEnv, sides: Side[], size: FillSize): Promise<Section> {
  const running = (side: Side) => side.app.get(CheckpointService);
  let position = 0;
  const renewal = (side: Side) => {
    const keys = Array.from({ length: YEAR.runningKeys }, (_, i) => `running:${i + 1}`);
    const query = checkpointSql(side.schema).renew(
      keys,
      keys.map(() => 1),
      side.pid,
      side.started,
      60_000,
    );
    return side.owner.query(query);
  };
  const http = (side: Side, after: string | null) => {
    const position = after === null ? null : decodeCursor('keys', after, TIME_AND_KEY);
    return side.owner.query(checkpointHttpSql(side.schema).listKeys(HEAD, 50, position));
  };
  const operations: Operation[] = [
    {
      name: 'claim (a new key)',
      run: async (side) => {
        side.claims += 1;
        const key = `bench:claim:${side.claims}`;
        const claim = await running(side).claim(key, { totalItems: 10 });
        await running(side).release(key, claim.epoch);
      },
    },
    {
      name: 'advance',
      run: (side) => running(side).advance(side.key, side.epoch, { currentIndex: ++position }),
      perRound: 3,
    },
    { name: 'getProgress', run: (side) => running(side).getProgress('running:5000'), perRound: 3 },
    { name: 'lease renewal of 10,000 leases (one statement)', run: renewal },
    {
      // The bench's reaper leads (it asks first, then looks): what the leading process sends.
      name: "the reaper's sweep (10,000 running keys)",
      run: (side) => running(side).findOrphans('bench'),
    },
    { name: 'HTTP keys: first page', run: (side) => http(side, null) },
    { name: 'HTTP keys: a page 100,000 rows deep', run: (side) => http(side, side.deep.keys) },
    {
      name: "a run's progress (runs.get)",
      run: (side) => side.app.get(CheckpointRuns).get(side.runId),
    },
    { name: 'list()', run: (side) => running(side).list({ limit: 50 }) },
    {
      name: 'list(): a page 100,000 rows deep',
      run: (side) => running(side).list({ limit: 50, after: side.deep.keys }),
    },
    {
      name: "list({ state: 'completed' })",
      run: (side) => running(side).list({ state: 'completed', limit: 50 }),
    },
    {
      name: "list({ state: 'completed' }): 100,000 deep",
      run: (side) =>
        running(side).list({ state: 'completed', limit: 50, after: side.deep.completed }),
    },
    { name: 'runs.list()', run: (side) => side.app.get(CheckpointRuns).list({ limit: 50 }) },
    {
      name: 'runs.list(): 100,000 runs deep',
      run: (side) => side.app.get(CheckpointRuns).list({ limit: 50, after: side.deep.runs }),
    },
    {
      name: "runs.list({ state: 'completed' })",
      run: (side) => side.app.get(CheckpointRuns).list({ state: 'completed', limit: 50 }),
    },
    {
      name: "runs.list({ state: 'completed' }): deep",
      run: (side) =>
        side.app.get(CheckpointRuns).list({ state: 'completed', limit: 50, after: side.deep.runs }),
    },
    {
      name: 'failed items of a key: a page 80% into its ledger',
      run: (side) =>
        side.app
          .get(FailedItemsService)
          .list({ key: 'ledger:big', limit: 500, after: side.deep.ledger }),
    },
    {
      name: 'redrive: a page 80% into the ledger',
      run: (side) =>
        side.app.get(FailedItemsService).redriveItems('ledger:big', side.ledgerDepth, 500),
    },
  ];
  const rows: string[][] = [];
  const targets = [];
  const raw: Record<string, Json> = {};
  for (const operation of operations) {
    env.progress(`section 11: ${operation.name}`);
    const variants: Variant[] = sides.map((side) => ({
      label: side.label,
      measure: timed(() => operation.run(side)),
      perRound: operation.perRound,
    }));
    const samples = await interleave(variants, env.scaled(ROUNDS, 10), WARMUP);
    const big = summarize(samplesOf(samples, 'big'));
    const small = summarize(samplesOf(samples, 'small'));
    const r = big.p50 / small.p50;
    rows.push([operation.name, count(big.n), ms(small.p50), ms(big.p50), ms(big.p99), ratio(r)]);
    targets.push(target(`${operation.name}: ${ratio(r)} (≤ 1.2x)`, r <= 1.2));
    raw[operation.name] = { big: summaryJson(big), small: summaryJson(small) };
  }
  const full = scale === 1;
  return {
    id: '11',
    title: 'History does not slow the present',
    about:
      `The same calls on a database filled as a year fills it (${count(size.keys)} completed keys, ` +
      `${count(size.runs)} runs of ${size.chunksPerRun} chunks, ${count(size.ledgerRows)} failed ` +
      `items, ${count(size.runningKeys)} running keys; written by generate_series, then ANALYZE) and ` +
      `on a small one (the same running keys, 60 runs of 100 chunks, 1,000 failed items: about 16,000 rows), ` +
      `interleaved round by round; ratio = big p50 ÷ small p50. Renewal and the HTTP key list are ` +
      `the library's own statements (checkpoint.sql.ts, checkpoint-http.sql.ts) sent on a raw ` +
      `connection; the rest go through the public API.` +
      (full ? '' : ` **BENCH_FILL_SCALE=${scale}: not the full size.**`),
    columns: ['operation', 'n', 'small p50', 'big p50', 'big p99', 'big ÷ small'],
    rows,
    targets,
    notes: [
      'Deep pages: the keyset token of a row 100,000 rows into the list (or as deep as the small ' +
        'database goes); an offset would read every row before it.',
    ],
    raw: { scale, size: { ...size }, operations: raw },
  };
}
