// The retention purge. Same rules as checkpoint.sql.ts: the schema is validated and quoted,
// values are bound parameters.
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { Query } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';
import { ASYNC_COMMIT } from '../sql/statement-kit.js';

const { completed, cancelled } = CHECKPOINT_STATES;

/** Builds the retention statements for one schema. */
export function retentionSql(schema: string) {
  assertSchemaName(schema);
  const run = `"${schema}"."run"`;
  return {
    /**
     * One slice: up to `limit` completed and cancelled runs not updated since `before`, oldest
     * first (the run_finished_idx of migration 9), skipping runs another transaction holds. Their
     * chunks' keys go afterwards, in the key slices (checkpoint.sql.ts purgeSlice), which take a
     * chunk only once its run has finished or is gone.
     */
    purgeRuns: (before: Date, limit: number): Query => ({
      // = ANY(ARRAY(...)): the slice's ids probe the primary key; IN (...) may hash-join them
      // against the whole table.
      text: `DELETE FROM ${run} WHERE id = ANY (ARRAY(
               SELECT id FROM ${run}
               WHERE state IN ('${completed}', '${cancelled}') AND updated_at < $1
               ORDER BY updated_at LIMIT $2
               FOR UPDATE SKIP LOCKED))
             RETURNING id, ${ASYNC_COMMIT}`,
      values: [before, limit],
    }),
  };
}
