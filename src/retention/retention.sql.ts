// The retention purge. Same rules as checkpoint.sql.ts: the schema is validated and quoted,
// values are bound parameters.
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { Query } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';

const { completed, cancelled } = CHECKPOINT_STATES;

/** Builds the retention statement for one schema. */
export function retentionSql(schema: string) {
  assertSchemaName(schema);
  const checkpoint = `"${schema}"."checkpoint"`;
  const run = `"${schema}"."run"`;
  return {
    /**
     * One statement: completed and cancelled runs not updated since `before`, and completed and
     * cancelled keys not updated since then whose run (if any) is finished too. A key's failed
     * items go with it (ON DELETE CASCADE).
     */
    purge: (before: Date): Query => ({
      text: `WITH runs AS (
               DELETE FROM ${run}
               WHERE state IN ('${completed}', '${cancelled}') AND updated_at < $1
               RETURNING id
             ), keys AS (
               DELETE FROM ${checkpoint} c
               WHERE c.state IN ('${completed}', '${cancelled}') AND c.updated_at < $1
                 AND (c.run_id IS NULL OR NOT EXISTS (
                   SELECT 1 FROM ${run} r
                   WHERE r.id = c.run_id AND r.state NOT IN ('${completed}', '${cancelled}', 'failed')))
               RETURNING key
             )
             SELECT (SELECT count(*) FROM keys)::int AS keys, (SELECT count(*) FROM runs)::int AS runs`,
      values: [before],
    }),
  };
}
