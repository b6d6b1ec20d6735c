// The building blocks of the statements: the schema's names, quoted once, and the two ways a
// statement is made (a plain one, a prepared one). Nothing else builds SQL: the schema name is
// validated against IDENTIFIER_PATTERN before it gets here, and every value is a bound parameter
// but in one statement, whose values go in as literals (see `literal`).
// Times are clock_timestamp(), not now(): now() is the start of the transaction, and a batch's
// transaction starts before its work does, so progress rates would be wrong.

import { escapeLiteral } from 'pg';

/** A statement and its bound values. */
export interface Query {
  text: string;
  values: unknown[];
  /**
   * Set on the statements of the batch path: they go out as named (prepared) statements, so
   * that PostgreSQL parses and plans them once per connection instead of on every batch.
   */
  name?: string;
}

/** The names of one schema's objects and the statement builders, shared by every *.sql.ts. */
export interface StatementKit {
  schema: string;
  /** `"schema"."checkpoint"`, quoted. */
  table: string;
  /** The prefix of the schema's advisory locks. */
  lockSpace: string;
  /** The progress channel (heard by watchers). */
  channel: string;
  /** The operators' channel (heard by the owning process). */
  controlChannel: string;
  q: (text: string, values?: unknown[]) => Query;
  prepared: <A extends unknown[]>(
    name: string,
    text: string,
    values: (...args: A) => unknown[],
  ) => (...args: A) => Query;
}

/**
 * The checkpoint row's columns, for a prepared statement that returns the row. Never `*` there:
 * PostgreSQL fixes a prepared statement's result columns when the connection prepares it, and
 * once a migration of a later version adds a column, `*` means another row type and the server
 * refuses that statement on that connection for good ("cached plan must not change result
 * type"). A process of this version then goes on working while the next one migrates.
 */
export const CHECKPOINT_COLUMNS = `key, state, epoch, owner, queue, job_id, dispatch, fingerprint,
  current_batch_index, current_index, processed_batches, total_batches, total_items, cursor,
  intermediate_result, metadata, result, error, attempt, attempt_started_at, attempt_start_index,
  created_at, updated_at, running_epoch, control, run_id, skipped_items, owner_pid, owner_started,
  lease_expires_at, run_chunk, redrive_requested_at, redrive_items, hand_backs`;

/** The kit of one schema; the caller validated the name. */
export function statementKit(schema: string): StatementKit {
  const q = (text: string, values: unknown[] = []): Query => ({ text, values });
  /**
   * A prepared statement: its text is built once, here, so that every call sends the very same
   * string (pg checks it against the one it prepared on the connection). Names are per connection
   * and must not clash between two schemas on one DataSource.
   */
  const prepared = <A extends unknown[]>(
    name: string,
    text: string,
    values: (...args: A) => unknown[],
  ): ((...args: A) => Query) => {
    const statementName = `checkpoint_${name}_${schema}`;
    return (...args) => ({ name: statementName, text, values: values(...args) });
  };
  return {
    schema,
    table: `"${schema}"."checkpoint"`,
    lockSpace: `nestjs-checkpoint:${schema}:`,
    channel: `${schema}_checkpoint`,
    controlChannel: `${schema}_checkpoint_control`,
    q,
    prepared,
  };
}

/**
 * Whether the owner recorded on row `c` is alive. No pid: the owner has no lease session (a
 * transaction pooler without a direct URL) and only its lease's expiry tells. Otherwise its lease
 * session is alive: the backend with that pid and start time is in pg_stat_activity (a direct
 * session; a pid alone is not enough, PostgreSQL reuses them), or that backend holds the
 * owner's advisory lock (a session through a pooler, whose server connection outlives it). A
 * session of another role shows no start time without pg_read_all_stats: it counts as alive
 * (the lease's expiry still bounds it).
 */
export function ownerAlive(c: string): string {
  return `(${c}.owner_pid IS NULL
           OR EXISTS (SELECT 1 FROM pg_stat_activity a
                       WHERE a.pid = ${c}.owner_pid
                         AND (a.backend_start = ${c}.owner_started OR a.backend_start IS NULL))
           OR EXISTS (SELECT 1 FROM pg_locks l
                       WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
                         AND l.pid = ${c}.owner_pid AND l.classid = ${c}.owner_pid::oid
                         AND l.objid = ${ownerLockId(`${c}.owner_started`)}::oid))`;
}

/**
 * The second half of an owner's advisory lock (the first is its pid): its start time in
 * microseconds, folded into a positive int4. Computed from the timestamp, not its text, which
 * depends on the session's TimeZone.
 */
export function ownerLockId(started: string): string {
  return `((extract(epoch FROM ${started}) * 1000000)::bigint % 2147483647)::int`;
}

/**
 * Whether some process watches progress now (a live row in the watcher table, migration 14):
 * advances alone are announced only then, by a NOTIFY or a change row alike.
 */
export function someoneWatches(schema: string): string {
  return `EXISTS (SELECT 1 FROM "${schema}"."watcher" WHERE until > clock_timestamp())`;
}

/**
 * A value written into a statement's text: only for the batch commit that goes out as one
 * simple-protocol message (ownership.sql.ts, advanceCommitBegin), where nothing can be bound.
 * Texts are quoted by pg's escapeLiteral; numbers must be safe integers (the library validated
 * them), so no other value can reach the text.
 */
export function literal(value: unknown): string {
  if (value === null) return 'NULL';
  if (typeof value === 'string') return escapeLiteral(value);
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new TypeError(`not a value for a statement's text: ${typeof value}`);
}

/**
 * Set in a purge statement: its commit does not wait for the WAL flush while it still holds the
 * rows it deleted (synchronous_commit off for its own transaction). A purge lost to a crash is
 * purged again.
 */
export const ASYNC_COMMIT = `set_config('synchronous_commit', 'off', true) AS async_commit`;
