// The statements of the shared change poll (a transaction pooler without a direct URL, where no
// process can LISTEN). Same rules as checkpoint.sql.ts.
import { someoneWatches, type Query } from '../checkpoint.sql.js';
import { assertSchemaName } from '../checkpoint.validation.js';

/** Builds the change-poll statements for one schema. */
export function sessionSql(schema: string) {
  assertSchemaName(schema);
  const table = `"${schema}"."change"`;
  return {
    /**
     * Records announcements (`progress` keys, `control` `<action>:<key>`) in one statement;
     * `advanced` (keys whose progress alone moved) only while some process watches (see
     * CheckpointSql.notify, whose `watched` it returns too).
     */
    recordChanges: (channels: string[], payloads: string[], advanced: string[]): Query => ({
      text: `WITH w AS MATERIALIZED (SELECT ${someoneWatches(schema)} AS watched),
                  written AS (
                    INSERT INTO ${table} (channel, payload)
                    SELECT * FROM unnest($1::text[], $2::text[])
                    UNION ALL
                    SELECT 'progress', k FROM unnest($3::text[]) AS k, w WHERE w.watched
                    RETURNING 1)
             SELECT w.watched, (SELECT count(*) FROM written)::int AS sent FROM w`,
      values: [channels, payloads, advanced],
    }),
    /**
     * The rows of every transaction that had not finished at the previous read (`since`, the
     * xmin of that read's snapshot: everything older was visible to it), and this read's xmin.
     * Rows may come twice; the reader skips ids it saw. Without `since`, only the xmin.
     */
    pollChanges: (since: string | null): Query => ({
      text: `WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon)
             SELECT h.horizon, c.id::text AS id, c.xid::text AS xid, c.channel, c.payload
             FROM h LEFT JOIN ${table} c ON $1::xid8 IS NOT NULL AND c.xid >= $1::xid8
             ORDER BY c.id`,
      values: [since],
    }),
    /** Announcements older than a minute: every reader has read them long ago. */
    purgeChanges: (): Query => ({
      text: `DELETE FROM ${table} WHERE at < clock_timestamp() - interval '1 minute'`,
      values: [],
    }),
  };
}

export type SessionSql = ReturnType<typeof sessionSql>;
