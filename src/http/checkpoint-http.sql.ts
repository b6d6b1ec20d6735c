// The HTTP module's read statements. Same rules as checkpoint.sql.ts: the schema name is
// validated and quoted, every value is a bound parameter.
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { Query } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';

/** Filters of the key list; null means "any". */
export interface KeyFilter {
  state: string | null;
  runId: string | null;
  queue: string | null;
  /** A substring of the key. */
  search: string | null;
}

const { running } = CHECKPOINT_STATES;

/** Builds the HTTP module's statements for one schema. */
export function checkpointHttpSql(schema: string) {
  assertSchemaName(schema);
  const table = `"${schema}"."checkpoint"`;
  const q = (text: string, values: unknown[] = []): Query => ({ text, values });
  const keyWhere = `($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR run_id = $2)
    AND ($3::text IS NULL OR queue = $3) AND ($4::text IS NULL OR strpos(key, $4) > 0)`;
  // One row per run: its chunks' rows summed. The rate adds up the running chunks' own rates.
  const runColumns = `run_id, count(*)::int AS chunks,
    sum(current_index)::text AS processed_items,
    CASE WHEN bool_and(total_items IS NOT NULL) THEN sum(total_items)::text END AS total_items,
    sum(skipped_items)::text AS skipped_items,
    count(*) FILTER (WHERE state = 'pending')::int AS pending,
    count(*) FILTER (WHERE state = 'running')::int AS running,
    count(*) FILTER (WHERE state = 'paused')::int AS paused,
    count(*) FILTER (WHERE state = 'completed')::int AS completed,
    count(*) FILTER (WHERE state = 'failed')::int AS failed,
    count(*) FILTER (WHERE state = 'cancelled')::int AS cancelled,
    count(*) FILTER (WHERE state = 'released')::int AS released,
    max(attempt) AS attempt,
    COALESCE(sum(CASE WHEN state = '${running}' AND updated_at > attempt_started_at
      THEN (current_index - attempt_start_index)
           / EXTRACT(EPOCH FROM updated_at - attempt_started_at) END), 0)::float8
      AS items_per_second,
    min(created_at) AS created_at, max(updated_at) AS updated_at`;

  return {
    /** A page of keys, most recently updated first, with the number of keys the filter matches. */
    listKeys: (filter: KeyFilter, limit: number, offset: number) =>
      q(
        `SELECT *, count(*) OVER () AS total FROM ${table} WHERE ${keyWhere}
         ORDER BY updated_at DESC, key LIMIT $5 OFFSET $6`,
        [filter.state, filter.runId, filter.queue, filter.search, limit, offset],
      ),
    keys: (keys: string[]) => q(`SELECT * FROM ${table} WHERE key = ANY($1::text[])`, [keys]),
    /** A page of runs (keys grouped by run_id), most recently updated first. */
    listRuns: (limit: number, offset: number) =>
      q(
        `SELECT ${runColumns}, count(*) OVER () AS total FROM ${table}
         WHERE run_id IS NOT NULL GROUP BY run_id
         ORDER BY max(updated_at) DESC, run_id LIMIT $1 OFFSET $2`,
        [limit, offset],
      ),
    runs: (runIds: string[]) =>
      q(`SELECT ${runColumns} FROM ${table} WHERE run_id = ANY($1::text[]) GROUP BY run_id`, [
        runIds,
      ]),
    /** The runs the given keys belong to. */
    runsOfKeys: (keys: string[]) =>
      q(`SELECT DISTINCT run_id FROM ${table} WHERE key = ANY($1::text[]) AND run_id IS NOT NULL`, [
        keys,
      ]),
  };
}

export type CheckpointHttpSql = ReturnType<typeof checkpointHttpSql>;
