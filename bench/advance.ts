// What the bench saves with its n-th save, and the library's advance statement sent from
// outside the library, as the library sends it or the other way (prepared or not), with
// EXPLAIN on it: the diagnostics use these to tell the database's share of an advance from the
// client's.
import type pg from 'pg';
// Not the public API: the diagnostics must send exactly the statement the library sends.
import { checkpointSql, type CheckpointSql, type Query } from '../src/checkpoint.sql.js';
import type { ClaimedCheckpoint } from '../src/index.js';

/** The n-th save's progress, in the original service's four fields. */
export function progressAt(n: number) {
  return {
    currentBatchIndex: n,
    currentIndex: n * 100,
    processedBatches: n,
    totalBatches: 1_000_000,
  };
}

/** The n-th advance's progress: the fields the decorator writes after each batch. */
export function advanceAt(n: number) {
  return { ...progressAt(n), totalItems: 100_000_000 };
}

/** The library's statements per schema, built once: the raw arms must not pay for building. */
const statements = new Map<string, CheckpointSql>();

function sqlOf(schema: string): CheckpointSql {
  let sql = statements.get(schema);
  if (sql === undefined) {
    sql = checkpointSql(schema);
    statements.set(schema, sql);
  }
  return sql;
}

/** The statement CheckpointService.advance sends for `advanceAt(n)` on `claim`. */
export function advanceQuery(schema: string, claim: ClaimedCheckpoint, n: number): Query {
  const progress = advanceAt(n);
  return sqlOf(schema).advance(
    claim.key,
    claim.epoch,
    progress.currentIndex,
    progress.currentBatchIndex,
    progress.processedBatches,
    progress.totalBatches,
    progress.totalItems,
    null,
    null,
    null,
  );
}

/** A statement in pg's form, named (prepared) exactly when the library names it. */
export interface PgQuery {
  name?: string;
  text: string;
  values: unknown[];
}

/** The statement as the library sends it: prepared when it carries a name, else unnamed. */
export function asLibrarySends(query: Query): PgQuery {
  return query.name === undefined
    ? { text: query.text, values: query.values }
    : { name: query.name, text: query.text, values: query.values };
}

/**
 * The same statement sent the other way: unnamed when the library prepares it (parsed and
 * planned on every call), prepared under a bench name when the library does not.
 */
export function otherWay(query: Query): PgQuery {
  return query.name === undefined
    ? { name: 'bench_advance', text: query.text, values: query.values }
    : { text: query.text, values: query.values };
}

/** Whether the library sends the advance as a prepared statement. */
export function libraryPrepares(schema: string): boolean {
  return (
    sqlOf(schema).advance('k', 1, 0, null, null, null, null, null, null, null).name !== undefined
  );
}

export interface Explained {
  planningMs: number;
  executionMs: number;
  /** The scan that finds the row, e.g. "Index Scan using checkpoint_pkey". */
  scan: string;
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

interface ExplainOutput {
  Plan: PlanNode;
  'Planning Time': number;
  'Execution Time': number;
}

/**
 * EXPLAIN ANALYZE of a write, in a transaction that is rolled back: nothing changes. The
 * planning time is what an unnamed statement pays again on every call.
 */
export async function explain(
  pool: pg.Pool,
  query: Pick<Query, 'text' | 'values'>,
): Promise<Explained> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ 'QUERY PLAN': ExplainOutput[] }>(
      `EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) ${query.text}`,
      query.values,
    );
    const output = rows[0]['QUERY PLAN'][0];
    return {
      planningMs: output['Planning Time'],
      executionMs: output['Execution Time'],
      scan: scanOf(output.Plan),
    };
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

function scanOf(node: PlanNode): string {
  if (node['Node Type'].endsWith('Scan')) {
    return node['Index Name'] === undefined
      ? node['Node Type']
      : `${node['Node Type']} using ${node['Index Name']}`;
  }
  for (const child of node.Plans ?? []) {
    const found = scanOf(child);
    if (found !== '') return found;
  }
  return '';
}
