// @Checkpointed() under real crashes: a child process runs a 5,000-item job (batch 50) and is
// killed with SIGKILL again and again (inside a batch, between batches, after the advance but
// before its commit, and at random times), then restarted each time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sql } from '../support/database.js';
import { BATCH, ITEMS, crashAndResume, dropCrashSchemasAfterAll } from '../support/crash.js';

dropCrashSchemasAfterAll();

describe('@Checkpointed() across SIGKILLs', () => {
  it('transactional: every item has exactly one effect row after 12 crashes', async () => {
    const schema = await crashAndResume(
      'transactional',
      ['inside', 'between', 'before-commit', 'random'],
      12,
    );
    const [counts] = await sql<{ items: number; rows: number; max: number }>(
      `SELECT count(*)::int AS items, sum(n)::int AS rows, max(n)::int AS max
         FROM (SELECT item, count(*) AS n FROM "${schema}".effect GROUP BY item) per_item`,
    );
    assert.deepEqual(counts, { items: ITEMS, rows: ITEMS, max: 1 });
  });

  it('without transactions: no item is lost, and each crash redoes at most its own batch', async () => {
    const kills = 10;
    const schema = await crashAndResume('plain', ['inside', 'between', 'random'], kills);
    const [counts] = await sql<{ items: number; rows: number }>(
      `SELECT count(DISTINCT item)::int AS items, count(*)::int AS rows FROM "${schema}".effect`,
    );
    assert.equal(counts?.items, ITEMS, 'every item has an effect');
    // Items done twice: by the attempt that crashed and again by the next one.
    const redone = await sql<{ attempt: number; n: number }>(
      `SELECT later.attempt, count(*)::int AS n
         FROM "${schema}".effect later
         JOIN "${schema}".effect earlier ON earlier.item = later.item AND earlier.attempt < later.attempt
        GROUP BY later.attempt`,
    );
    for (const { attempt, n } of redone) {
      assert.ok(n <= BATCH, `attempt ${attempt} redid ${n} items, more than one batch`);
    }
    assert.ok((counts?.rows ?? 0) - ITEMS <= kills * BATCH);
  });
});
