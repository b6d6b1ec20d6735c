// The bench's own tables and statements. The library's table (`checkpoint`) is created in the
// same schema by the module's migrations; everything here is what the bench compares it with.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Rows of the narrow table: one per concurrent worker at most (64), with room to spare. */
const NARROW_ROWS = 128;
/** Completed keys in the checkpoint table before the first measurement (see seedHistory). */
const HISTORY_KEYS = 10_000;

/** A fresh schema name per run, so that a run never sees another run's rows. */
export function benchSchemaName(): string {
  return `bench_${randomBytes(4).toString('hex')}`;
}

/** The bench's statements for one schema (a name from benchSchemaName: safe to interpolate). */
export function benchSql(schema: string) {
  const s = `"${schema}"`;
  return {
    setup: [
      `CREATE SCHEMA ${s}`,
      // The old service's storage: the whole job payload, item list included, in one jsonb.
      `CREATE TABLE ${s}.job (id int PRIMARY KEY, data jsonb NOT NULL)`,
      // The floor: the narrowest durable write there is, one small row per writer.
      `CREATE TABLE ${s}.narrow (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)`,
      `INSERT INTO ${s}.narrow (id) SELECT generate_series(0, ${NARROW_ROWS - 1})`,
      // What a transactional batch writes (entity BenchEffect).
      `CREATE TABLE ${s}.bench_effect (id serial PRIMARY KEY, item int NOT NULL, batch int NOT NULL)`,
    ],
    /**
     * The checkpoint table as a deployment that has run for a while has it: completed keys and
     * fresh statistics. On a table that was never analyzed the planner picks another plan for
     * the advance (section 7b), and autovacuum would switch plans at a random moment of the run.
     */
    seedHistory: [
      `INSERT INTO ${s}.checkpoint (key, state, epoch, attempt, current_index, current_batch_index,
                                    processed_batches, total_batches, total_items, result)
       SELECT 'history:' || g, 'completed', 1, 1, 1000, 10, 10, 10, 1000, '{"items":1000}'
       FROM generate_series(1, ${HISTORY_KEYS}) AS g`,
      `ANALYZE ${s}.checkpoint`,
    ],
    /** A second schema whose checkpoint table stays as the migration leaves it (section 7b). */
    freshSchema: `${schema}_fresh`,
    drop: [`DROP SCHEMA IF EXISTS ${s} CASCADE`, `DROP SCHEMA IF EXISTS "${schema}_fresh" CASCADE`],
    /** The floor of a durable write: one narrow row, one statement, autocommit. */
    bareUpdate: `UPDATE ${s}.narrow SET n = n + 1 WHERE id = $1`,
    /** The floor of a round trip: no table, no parameters, nothing to commit. */
    selectOne: 'SELECT 1',
    insertJob: `INSERT INTO ${s}.job (id, data) VALUES ($1, $2::jsonb)`,
    readJob: `SELECT data FROM ${s}.job WHERE id = $1`,
    writeJob: `UPDATE ${s}.job SET data = $2::jsonb WHERE id = $1`,
  };
}

export type BenchSql = ReturnType<typeof benchSql>;

/** Creates the bench schema and its tables. */
export async function createBenchSchema(pool: pg.Pool, sql: BenchSql): Promise<void> {
  for (const statement of sql.setup) await pool.query(statement);
}

/** Gives the library's table (created by its migrations) a history: see benchSql().seedHistory. */
export async function seedHistory(pool: pg.Pool, sql: BenchSql): Promise<void> {
  for (const statement of sql.seedHistory) await pool.query(statement);
}

/** Drops both schemas of the run. */
export async function dropBenchSchemas(pool: pg.Pool, sql: BenchSql): Promise<void> {
  for (const statement of sql.drop) await pool.query(statement);
}

/** A raw pg pool (no TypeORM, no library): what the floors and the old way run on. */
export function rawPool(
  url: string,
  max: number,
  options: { applicationName?: string; idleTimeoutMs?: number } = {},
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    application_name: options.applicationName,
    idleTimeoutMillis: options.idleTimeoutMs,
  });
  // An idle client that loses its connection must not crash the bench process.
  pool.on('error', (error) => console.error(`bench: idle connection failed: ${error.message}`));
  return pool;
}
