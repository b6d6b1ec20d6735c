// History does not slow the present (issue 20): on a table filled as a year fills it, every
// statement of the library finds its rows through an index (no sequential scan of the checkpoint,
// run or ledger table, under the planner's own choice with fresh statistics); lists page by an
// opaque keyset cursor and say when more follow; a run keeps its chunk counts on its row; the
// purge goes in short slices and says what it removed; the index migration runs outside the
// migration transaction, also through TypeORM.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import pg from 'pg';
import { getConstructionPlans } from 'pg-boss';
import { DataSource } from 'typeorm';
import { fillHistory, type FillSize } from '../../bench/fill.js';
import { checkpointSql, type Query } from '../../src/checkpoint.sql.js';
import { checkpointHttpSql } from '../../src/http/checkpoint-http.sql.js';
import {
  CheckpointRetention,
  CheckpointRuns,
  CheckpointService,
  CheckpointValidationError,
  checkpointMigrations,
  createCheckpointTypeOrmMigrations,
  FailedItemsService,
} from '../../src/index.js';
import { itemsSql } from '../../src/items/items.sql.js';
import { retentionSql } from '../../src/retention/retention.sql.js';
import { runsSql } from '../../src/runs/runs.sql.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';

const schema = uniqueSchema('scale');
/** pg-boss's tables: a run's state reads its job table. */
const bossSchema = `${schema}_boss`;
const schemas = [schema, bossSchema];
/** Big enough that a sequential scan loses to any index by far; small enough for a test. */
const SIZE: FillSize = {
  keys: 200_000,
  runs: 2_000,
  chunksPerRun: 50,
  ledgerRows: 100_000,
  runningKeys: 2_000,
};
const TABLES = new Set(['checkpoint', 'run', 'failed_item']);
/** When the ledger's redrive was asked: after every fill row failed. */
const REQUESTED = new Date().toISOString();
let app: INestApplicationContext;
let client: pg.Client;

before(async () => {
  app = await createTestApp({ schema, poolSize: 3 });
  client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  const [identity] = (
    await client.query<{ pid: number; started: string }>(
      `SELECT pg_backend_pid() AS pid, backend_start::text AS started
       FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
    )
  ).rows;
  await fillHistory(client, schema, SIZE, identity);
  await client.query(getConstructionPlans(bossSchema));
});

after(async () => {
  await client.end();
  await app.close();
  for (const each of schemas) await dropSchema(each);
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

/** The sequential scans of the library's tables in a statement's plan (EXPLAIN, not run). */
async function seqScans(query: Query): Promise<{ tables: string[]; plan: string }> {
  const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
    `EXPLAIN (FORMAT JSON) ${query.text}`,
    query.values,
  );
  const found: string[] = [];
  const walk = (node: PlanNode) => {
    if (node['Node Type'] === 'Seq Scan' && TABLES.has(node['Relation Name'] ?? '')) {
      found.push(node['Relation Name'] ?? '');
    }
    node.Plans?.forEach(walk);
  };
  walk(rows[0]['QUERY PLAN'][0].Plan);
  if (found.length === 0) return { tables: found, plan: '' };
  const text = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${query.text}`, query.values);
  return { tables: found, plan: text.rows.map((row) => row['QUERY PLAN']).join('\n') };
}

describe('every statement finds its rows by an index on a table of history', () => {
  it('checkpoint, HTTP, runs, ledger and retention statements: no sequential scan', async () => {
    const c = checkpointSql(schema);
    const h = checkpointHttpSql(schema);
    const r = runsSql(schema);
    const i = itemsSql(schema);
    const t = retentionSql(schema);
    const at = new Date(Date.now() - 200 * 86_400_000);
    const running = Array.from({ length: SIZE.runningKeys }, (_, n) => `running:${n + 1}`);
    const deep: [string, string] = [at.toISOString(), 'history:100000'];
    const noFilter = { state: null, runId: null, queue: null, search: null };
    const statements: Record<string, Query> = {
      claim: c.claim(
        'history:5',
        'me',
        null,
        10,
        null,
        null,
        null,
        null,
        1,
        at.toISOString(),
        1000,
      ),
      'claim of a new key': c.claim('new', 'me', null, 10, null, null, 'q', '1', 1, 'now', 1000),
      advance: c.advance('running:5', 1, 10, null, null, null, null, null, null, null, 5000),
      complete: c.complete('running:5', 1, null),
      release: c.release('running:5', 1),
      'find (getProgress)': c.find('history:5'),
      'lease renewal of every running key': c.renew(
        running,
        running.map(() => 1),
        1,
        at.toISOString(),
        1000,
      ),
      "the reaper's sweep": c.orphans(),
      abandon: c.abandon('running:5', 1, '{}', 1, at.toISOString()),
      list: c.list(null, 50, null),
      'list, deep': c.list(null, 50, deep),
      'list of completed': c.list('completed', 50, null),
      'list of completed, deep': c.list('completed', 50, deep),
      'list of running': c.list('running', 50, null),
      'purge slice': c.purgeSlice('completed', at, null, 500),
      'purge slice, further': c.purgeSlice('completed', at, deep, 500),
      'pause a run': c.pauseRun('run:5'),
      'HTTP keys': h.listKeys(noFilter, 50, null),
      'HTTP keys, deep': h.listKeys(noFilter, 50, deep),
      'HTTP keys of a run': h.listKeys({ ...noFilter, runId: 'run:5' }, 50, null),
      // The HTTP module's runs are runs.list / progress below, with its chunks per state.
      'HTTP chunks per state of a run': h.chunkCounts(['run:5']),
      "a run's progress": r.progress('run:5', bossSchema),
      'runs.list': r.list(null, null, 50, null, bossSchema),
      'runs.list, deep': r.list(null, null, 50, [at.toISOString(), 'run:5'], bossSchema),
      'runs.list of completed': r.list(null, 'completed', 50, null, bossSchema),
      'runs.list of completed, deep': r.list(
        null,
        'completed',
        50,
        [at.toISOString(), 'run:5'],
        bossSchema,
      ),
      'runs.list of running runs': r.list(null, 'running', 50, null, bossSchema),
      'runs.list of failed runs': r.list(null, 'failed', 50, null, bossSchema),
      'runs.list of a queue': r.list('history', null, 50, null, bossSchema),
      'run chunks': r.chunks('run:5'),
      'run finish': r.finish('run:5'),
      'unfinished runs': r.unfinished(['history']),
      'hooks due': r.hookDue(['history']),
      'ledger of a key': i.listOfKey('ledger:big', null, 100),
      'ledger of a key, deep': i.listOfKey('ledger:big', ['ledger:big', 80_000], 100),
      'ledger of a run': i.listOfRun('run:ledger', null, 100),
      'ledger of a run, further': i.listOfRun('run:ledger', ['run:ledger:7', 20], 100),
      'redrive request': i.redriveRequest('ledger:big'),
      'redrive page': i.redriveItems('ledger:big', 80_000, { at: REQUESTED, items: null }, 500),
      'redrive page of chosen items': i.redriveItems(
        'ledger:big',
        80_000,
        { at: REQUESTED, items: ['80001', '80002'] },
        500,
      ),
      'redrive request of a run': i.requestRedrive(null, 'run:ledger'),
      'retention runs slice': t.purgeRuns(at, 200),
    };
    const scanned: string[] = [];
    for (const [label, query] of Object.entries(statements)) {
      const { tables, plan } = await seqScans(query);
      if (tables.length > 0) scanned.push(`${label}: Seq Scan on ${tables.join(', ')}\n${plan}`);
    }
    assert.deepEqual(scanned, []);
    // A renewal reads an index of running rows alone, whose size follows the work in flight:
    // every running row for a process holding them all, a descent per lease for a few.
    const indexOf = async (query: Query) => {
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN (COSTS OFF) ${query.text}`,
        query.values,
      );
      return rows.map((row) => /Index Scan using (\S+)/.exec(row['QUERY PLAN'])?.[1]).find(Boolean);
    };
    assert.match(
      (await indexOf(statements['lease renewal of every running key'])) ?? '',
      /^checkpoint_running_(key|queue)_idx$/,
    );
    const few = running.slice(0, 8);
    assert.equal(
      await indexOf(
        c.renew(
          few,
          few.map(() => 1),
          1,
          at.toISOString(),
          1000,
        ),
      ),
      'checkpoint_running_key_idx',
    );
  });

  it('a redrive page reads its page, not the rest of the ledger', async () => {
    // An ordered range of the ledger's primary key that stops at the LIMIT: no sort of the
    // ledger's remaining items (a bitmap scan and sort read all of them on every page).
    const query = itemsSql(schema).redriveItems(
      'ledger:big',
      80_000,
      { at: REQUESTED, items: null },
      500,
    );
    const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
      `EXPLAIN (FORMAT JSON) ${query.text}`,
      query.values,
    );
    const kinds: string[] = [];
    const walk = (node: PlanNode) => {
      kinds.push(`${node['Node Type']}${node['Index Name'] ? ` ${node['Index Name']}` : ''}`);
      node.Plans?.forEach(walk);
    };
    walk(rows[0]['QUERY PLAN'][0].Plan);
    assert.deepEqual(kinds, ['Limit', 'Index Scan failed_item_pkey']);
  });
});

describe('lists page by an opaque cursor and say when more follow', () => {
  it('list(): pages newest first, a deep page reached by its token, more false at the end', async () => {
    const service = app.get(CheckpointService);
    const first = await service.list({ state: 'running', limit: 500 });
    assert.equal(first.items.length, 500);
    assert.equal(first.more, true);
    assert.ok(first.items.every((row) => row.state === 'running'));
    const seen = new Set(first.items.map((row) => row.key));
    let after = first.after;
    let pages = 1;
    for (let more: boolean = first.more; more; pages++) {
      const page = await service.list({ state: 'running', limit: 500, after: after ?? '' });
      for (const row of page.items) {
        assert.ok(!seen.has(row.key), `${row.key} once`);
        seen.add(row.key);
      }
      more = page.more;
      after = page.after;
    }
    assert.equal(seen.size, SIZE.runningKeys);
    assert.equal(pages, SIZE.runningKeys / 500);
    await assert.rejects(service.list({ after: 'bm90IGEgY3Vyc29y' }), CheckpointValidationError);
  });

  it('runs.list() and the ledger page the same way', async () => {
    const runs = app.get(CheckpointRuns);
    const first = await runs.list({ state: 'completed', limit: 3 });
    assert.deepEqual(
      first.items.map((run) => run.id),
      [`run:${SIZE.runs}`, `run:${SIZE.runs - 1}`, `run:${SIZE.runs - 2}`],
    );
    assert.equal(first.items[0].chunks.completed, SIZE.chunksPerRun, 'counts kept on the run row');
    const second = await runs.list({ state: 'completed', limit: 3, after: first.after ?? '' });
    assert.equal(second.items[0].id, `run:${SIZE.runs - 3}`);

    const ledger = app.get(FailedItemsService);
    const page = await ledger.list({ runId: 'run:ledger', limit: 1000 });
    assert.equal(page.items.length, 1000);
    assert.equal(page.more, true, 'the ledger says that more follow (no silent stop at 1,000)');
    const next = await ledger.list({ runId: 'run:ledger', limit: 1000, after: page.after ?? '' });
    const last = page.items[page.items.length - 1];
    const head = next.items[0];
    assert.ok(
      head.key > last.key || (head.key === last.key && head.itemIndex > last.itemIndex),
      'the next page starts after the last item',
    );
  });
});

describe('a run keeps its chunk counts on its row', () => {
  it('claims, completions, control and deletes move the counts in the same statement', async () => {
    const local = uniqueSchema('scale_runs');
    schemas.push(local);
    const runApp = await createTestApp({ schema: local, poolSize: 2 });
    try {
      const service = runApp.get(CheckpointService);
      const runs = runApp.get(CheckpointRuns);
      await sql(
        `INSERT INTO "${local}".run (id, queue, state, mode, total_items, chunk_count, chunk_size)
         VALUES ('r', 'q', 'running', 'queued', 40, 4, 10)`,
      );
      await sql(
        `INSERT INTO "${local}".checkpoint (key, state, queue, run_id, run_chunk, total_items)
         SELECT 'r:' || g, 'pending', 'q', 'r', g, 10 FROM generate_series(0, 3) g`,
      );
      const a = await service.claim('r:0', { totalItems: 10 });
      await service.advance('r:0', a.epoch, { currentIndex: 10 });
      await service.complete('r:0', a.epoch, null);
      const b = await service.claim('r:1', { totalItems: 10 });
      await service.advance('r:1', b.epoch, { currentIndex: 4 });
      await service.fail('r:1', b.epoch, new Error('x'));
      const c = await service.claim('r:2', { totalItems: 10 });
      await service.release('r:2', c.epoch);
      await service.pause('r:2');
      await service.cancel('r:3');
      const counted = await sql<Record<string, number>>(
        `SELECT chunks_pending, chunks_running, chunks_released, chunks_paused, chunks_completed,
                chunks_failed, chunks_cancelled, chunks_started FROM "${local}".run WHERE id = 'r'`,
      );
      const summed = await sql<Record<string, number>>(
        `SELECT ${['pending', 'running', 'released', 'paused', 'completed', 'failed', 'cancelled']
          .map((state) => `count(*) FILTER (WHERE state = '${state}')::int AS chunks_${state}`)
          .join(', ')}, count(*) FILTER (WHERE attempt > 0)::int AS chunks_started
         FROM "${local}".checkpoint WHERE run_id = 'r'`,
      );
      assert.deepEqual(counted[0], summed[0]);
      assert.deepEqual(summed[0], {
        chunks_pending: 0,
        chunks_running: 0,
        chunks_released: 0,
        chunks_paused: 1,
        chunks_completed: 1,
        chunks_failed: 1,
        chunks_cancelled: 1,
        chunks_started: 3,
      });
      const run = await runs.get('r');
      assert.equal(run?.processedItems, 14, 'settled items on the row, plus the moving chunks');
      const [settled] = await sql<{ items_settled: string }>(
        `SELECT items_settled FROM "${local}".run WHERE id = 'r'`,
      );
      assert.equal(Number(settled.items_settled), 14, 'completed 10 + failed 4');
      // A settled chunk moved again (a rewind) leaves the settled items.
      await service.rewind('r:0', 0, { expectedEpoch: (await service.find('r:0'))?.epoch ?? 0 });
      assert.equal((await runs.get('r'))?.processedItems, 4);
      // A failed chunk rewound stays failed: its settled items follow its new position.
      await service.rewind('r:1', 2, { expectedEpoch: (await service.find('r:1'))?.epoch ?? 0 });
      assert.equal((await runs.get('r'))?.processedItems, 2);
      await service.clearCheckpoint('r:1');
      const [after] = await sql<{ chunks_failed: number; items_settled: string }>(
        `SELECT chunks_failed, items_settled FROM "${local}".run WHERE id = 'r'`,
      );
      assert.equal(after.chunks_failed, 0);
      assert.equal(Number(after.items_settled), 0);
    } finally {
      await runApp.close();
    }
  });
});

describe('retention at size', () => {
  it('purges in slices, skipping nothing it should take, and reports what went', async () => {
    const retention = app.get(CheckpointRetention);
    // One cutoff for every count: a purge that takes minutes on a busy machine would otherwise
    // let keys age past a `now()` read after it (the fill spreads updates over a year).
    const cutoff = new Date(Date.now() - 300 * 86_400_000);
    const beforeKeys = await sql<{ n: string }>(
      `SELECT count(*) AS n FROM "${schema}".checkpoint
       WHERE state = 'completed' AND updated_at < $1
         AND (run_id IS NULL OR run_id <> 'run:ledger')`,
      [cutoff],
    );
    const oldRuns = await sql<{ n: string }>(
      `SELECT count(*) AS n FROM "${schema}".run
       WHERE state = 'completed' AND updated_at < now() - interval '300 days'`,
    );
    const result = await retention.purge(300);
    assert.equal(result.runs, Number(oldRuns[0].n));
    assert.equal(result.keys, Number(beforeKeys[0].n));
    assert.ok(result.slices > 10, `many slices (${result.slices})`);
    const left = await sql<{ n: string }>(
      `SELECT count(*) AS n FROM "${schema}".checkpoint
       WHERE state = 'completed' AND updated_at < $1`,
      [cutoff],
    );
    assert.equal(Number(left[0].n), 0);
    const ledger = await sql<{ n: string }>(
      `SELECT count(*) AS n FROM "${schema}".failed_item WHERE key = 'ledger:big'`,
    );
    assert.equal(
      Number(ledger[0].n),
      Math.floor(SIZE.ledgerRows * 0.9),
      'a live key keeps its ledger',
    );
  });

  it("purge slices take a key's failed items with it, and count them", async () => {
    const local = uniqueSchema('scale_purge');
    schemas.push(local);
    const purgeApp = await createTestApp({ schema: local, poolSize: 2 });
    try {
      const service = purgeApp.get(CheckpointService);
      const items = purgeApp.get(FailedItemsService);
      const claim = await service.claim('k', { totalItems: 10 });
      for (const index of [1, 2, 3]) {
        await items.skip('k', claim.epoch, index, null, new Error('bad'), {
          currentIndex: index + 1,
          currentBatchIndex: null,
          processedBatches: null,
          cursor: undefined,
        });
      }
      await service.complete('k', claim.epoch, null);
      const retention = purgeApp.get(CheckpointRetention);
      await sql(
        `UPDATE "${local}".checkpoint SET created_at = now() - interval '9 days',
           updated_at = now() - interval '9 days'`,
      );
      const result = await retention.purge(7);
      assert.equal(result.keys, 1);
      assert.equal(result.failedItems, 3);
      assert.equal((await sql(`SELECT 1 FROM "${local}".failed_item`)).length, 0);
    } finally {
      await purgeApp.close();
    }
  });
});

describe('the index migration runs outside the migration transaction', () => {
  it('builds valid indexes concurrently, and again after a build that died half way', async () => {
    const invalid = await sql<{ name: string }>(
      `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND NOT i.indisvalid`,
      [schema],
    );
    assert.deepEqual(invalid, []);
    // As if a process died half way: the migration is unrecorded and one index is missing.
    await sql(`DROP INDEX "${schema}"."run_created_idx"`);
    await sql(`DELETE FROM "${schema}".migration WHERE version = 9`);
    const again = await createTestApp({ schema, poolSize: 1 });
    await again.close();
    const indexes = await sql<{ name: string }>(
      `SELECT indexname AS name FROM pg_indexes WHERE schemaname = $1 AND indexname = 'run_created_idx'`,
      [schema],
    );
    assert.equal(indexes.length, 1);
  });

  it('TypeORM runs it outside its transaction when asked (concurrentIndexes, mode each)', async () => {
    const local = uniqueSchema('scale_orm');
    schemas.push(local);
    const statements: string[] = [];
    const dataSource = new DataSource({
      type: 'postgres',
      url: DATABASE_URL,
      migrations: createCheckpointTypeOrmMigrations(local, { concurrentIndexes: true }),
      migrationsTableName: `${local}_typeorm_migrations`,
      migrationsTransactionMode: 'each',
      logging: ['query'],
      logger: {
        logQuery: (query: string) => statements.push(query),
        logQueryError: () => undefined,
        logQuerySlow: () => undefined,
        logSchemaBuild: () => undefined,
        logMigration: () => undefined,
        log: () => undefined,
      },
    });
    await dataSource.initialize();
    try {
      const applied = await dataSource.runMigrations();
      assert.equal(applied.length, checkpointMigrations.length);
      assert.ok(statements.some((each) => /CREATE INDEX CONCURRENTLY/.test(each)));
      await dataSource.query(`DROP TABLE "${local}_typeorm_migrations"`);
    } finally {
      await dataSource.destroy();
    }
  });
});
