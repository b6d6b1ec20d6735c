// The testing module's restore runs as one transaction while the application's transactions and
// the library's timers take the same tables in their own order. When PostgreSQL breaks a real
// deadlock by aborting the restore, the restore runs again (nothing of it was applied).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { query } from '../../src/testing/test-database.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';
import { waitUntil } from '../support/wait.js';

const schema = uniqueSchema('restore');

after(() => dropSchema(schema));

describe('the testing database query', () => {
  it('runs its transaction again when it is the victim of a deadlock', async () => {
    await sql(`CREATE SCHEMA "${schema}"`);
    await sql(`CREATE TABLE "${schema}".a (n int); CREATE TABLE "${schema}".b (n int)`);
    const other = new pg.Client({ connectionString: DATABASE_URL });
    await other.connect();
    try {
      // The other transaction waits long before it looks for a deadlock: this one is the victim.
      await other.query(`SET deadlock_timeout = '20s'`);
      await other.query('BEGIN');
      await other.query(`LOCK TABLE "${schema}".b IN ACCESS EXCLUSIVE MODE`);
      const restoring = query(
        DATABASE_URL,
        { text: `LOCK TABLE "${schema}".a IN ACCESS EXCLUSIVE MODE`, values: [] },
        { text: `LOCK TABLE "${schema}".b IN ACCESS EXCLUSIVE MODE`, values: [] },
        { text: `INSERT INTO "${schema}".a VALUES (1) RETURNING n`, values: [] },
      );
      await waitUntil(
        async () =>
          (
            await sql<{ waiting: number }>(
              `SELECT count(*)::int AS waiting FROM pg_locks
                WHERE NOT granted AND relation = $1::regclass`,
              [`"${schema}".b`],
            )
          )[0].waiting > 0,
        20_000,
        'the restore waiting for b',
      );
      // Now the cycle: the other takes a, which the restore holds. It gets it once PostgreSQL
      // aborted the restore's first try.
      await other.query(`LOCK TABLE "${schema}".a IN ACCESS EXCLUSIVE MODE`);
      await other.query('COMMIT');
      assert.deepEqual(await restoring, [{ n: 1 }]);
      assert.deepEqual(await sql(`SELECT n FROM "${schema}".a`), [{ n: 1 }]);
    } finally {
      await other.end();
    }
  });
});
