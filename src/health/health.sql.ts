// The health indicator's statement. Same rules as checkpoint.sql.ts.
import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import type { Query } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';

/** Builds the health statements for one schema. */
export function healthSql(schema: string) {
  assertSchemaName(schema);
  const table = `"${schema}"."checkpoint"`;
  return {
    /** Keys an attempt owns that have not advanced for `stallMs`, the longest-idle first. */
    stalled: (stallMs: number, limit: number): Query => ({
      text: `SELECT key, owner, attempt,
               (EXTRACT(EPOCH FROM clock_timestamp() - updated_at) * 1000)::bigint AS idle_ms
             FROM ${table}
             WHERE state = '${CHECKPOINT_STATES.running}' AND running_epoch IS NOT NULL
               AND updated_at < clock_timestamp() - make_interval(secs => $1 / 1000.0)
             ORDER BY updated_at LIMIT $2`,
      values: [stallMs, limit],
    }),
  };
}
