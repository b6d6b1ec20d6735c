// Shared by the failing-items tests: the ledger and effect checks, and the worker process.
import assert from 'node:assert/strict';
import { badItems } from '../fixtures/failing-items-job.js';
import { sql } from './database.js';
import { Child } from './process.js';

/** Items of the 10,000-item runs. */
export const ITEMS = 10_000;

export const sorted = (items: Iterable<number>) => [...items].sort((a, b) => a - b);

export interface LedgerRow {
  item_index: string;
  item: unknown;
  error_name: string;
  error_message: string;
  attempt: number;
}

export const ledgerOf = (schema: string, key: string) =>
  sql<LedgerRow>(
    `SELECT item_index, item, error_name, error_message, attempt FROM "${schema}".failed_item
     WHERE key = $1 ORDER BY item_index`,
    [key],
  );

/** Items whose effect count is not `expected(item)`. */
export async function wrongEffects(
  schema: string,
  n: number,
  expected: (item: number) => number,
): Promise<string[]> {
  const rows = await sql<{ item: number; n: number }>(
    `SELECT item, count(*)::int AS n FROM "${schema}".effect GROUP BY item`,
  );
  const counts = new Map(rows.map((row) => [row.item, row.n]));
  const wrong: string[] = [];
  for (let item = 0; item < n; item++) {
    const seen = counts.get(item) ?? 0;
    if (seen !== expected(item)) wrong.push(`item ${item}: ${seen} effects, not ${expected(item)}`);
  }
  return wrong;
}

export const checkpointRow = async (schema: string, key: string) =>
  (
    await sql<{
      state: string;
      skipped_items: string;
      current_index: string;
      redrive_requested_at: Date | null;
      error: { name: string } | null;
    }>(`SELECT * FROM "${schema}".checkpoint WHERE key = $1`, [key])
  )[0];

/** The run's promised outcome: the ledger holds exactly the bad items, every other item once. */
export async function assertScreened(schema: string, key: string): Promise<void> {
  const bad = badItems(ITEMS);
  const ledger = await ledgerOf(schema, key);
  assert.deepEqual(
    ledger.map((row) => Number(row.item_index)),
    sorted(bad),
  );
  for (const row of ledger) {
    assert.equal(row.error_name, 'RefusedItemError');
    assert.equal(row.error_message, `item ${row.item_index} refused`);
    assert.equal(row.item, Number(row.item_index), 'the ledger stores the item itself');
  }
  assert.deepEqual(await wrongEffects(schema, ITEMS, (item) => (bad.has(item) ? 0 : 1)), []);
  const row = await checkpointRow(schema, key);
  assert.equal(row.state, 'completed');
  assert.equal(Number(row.skipped_items), bad.size);
  assert.equal(Number(row.current_index), ITEMS);
}

/** Runs the worker to completion (no crash planned); returns its output lines. */
export async function runWorker(env: Record<string, string>): Promise<string[]> {
  const child = Child.start('failing-items-worker', env);
  const exit = await child.exited;
  assert.equal(exit.code, 0, `worker failed: ${child.stderr}\n${child.lines.join('\n')}`);
  assert.ok(child.lines.includes('completed'));
  return child.lines;
}
