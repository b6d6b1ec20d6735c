import { CHECKPOINT_STATES } from '../checkpoint.constants.js';
import { ownerLockId, someoneWatches, type StatementKit } from './statement-kit.js';

const { running } = CHECKPOINT_STATES;

/** The schema's migrations, the lease session (identity, renewal) and LISTEN/NOTIFY. */
export function sessionSql({ schema, table, lockSpace, channel, controlChannel, q }: StatementKit) {
  const watcher = `"${schema}"."watcher"`;
  return {
    // --- migrations -------------------------------------------------------------------------
    migrationLock: () =>
      q(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`${lockSpace}migrate`]),
    /** The session lock of a migration that runs outside a transaction (try, never wait). */
    concurrentMigrationLock: () =>
      q(`SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked`, [
        `${lockSpace}migrate-concurrently`,
      ]),
    concurrentMigrationUnlock: () =>
      q(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, [`${lockSpace}migrate-concurrently`]),
    /** A migration's DDL waits this long for a table lock, then gives way (see the runner). */
    migrationLockTimeout: (ms: number) =>
      q(`SELECT set_config('lock_timeout', $1, true)`, [`${ms}ms`]),
    /** Transactions of other sessions holding locks on the library's tables: what DDL waits for. */
    migrationBlockers: () =>
      q(
        `SELECT DISTINCT a.pid, (extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::bigint AS ms,
                left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80) AS query
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.granted AND l.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
            AND l.relation IN (to_regclass($1), to_regclass($2))
          ORDER BY ms DESC LIMIT 3`,
        [table, `"${schema}"."run"`],
      ),
    createSchema: () => q(`CREATE SCHEMA IF NOT EXISTS "${schema}"`),
    createMigrationTable: () =>
      q(`CREATE TABLE IF NOT EXISTS "${schema}"."migration" (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`),
    appliedMigrations: () => q(`SELECT version FROM "${schema}"."migration" ORDER BY version`),
    recordMigration: (version: number, name: string) =>
      q(`INSERT INTO "${schema}"."migration" (version, name) VALUES ($1, $2)`, [version, name]),

    // --- leases --------------------------------------------------------------------------------
    /**
     * The identity of the lease session, read once per session: its backend pid and a start
     * time (a pid alone is reused by PostgreSQL). Direct, the start is the backend's own, so that
     * pg_stat_activity tells a dead owner at once. Through a session pooler (`pooled`) a server
     * connection outlives its client, so the start is now, and the session holds an advisory
     * lock named by pid and start, which the pooler's DISCARD ALL drops when the client goes:
     * pg_locks tells a dead owner there (see ownerAlive). The start stays text so that it
     * compares exactly (a JavaScript Date would drop its microseconds). The same statement asks
     * the server to probe this session's socket (keepalives, a user timeout), so that a silently
     * partitioned owner's backend ends, and its leases with it, without waiting two hours.
     */
    sessionIdentity: (
      pooled: boolean,
      keepaliveIdleS: number,
      keepaliveIntervalS: number,
      userTimeoutMs: number,
    ) =>
      q(
        `WITH me AS (
           SELECT pg_backend_pid() AS pid,
             CASE WHEN $1 THEN clock_timestamp() ELSE (SELECT backend_start FROM pg_stat_activity
                                                       WHERE pid = pg_backend_pid()) END AS started)
         SELECT pid, started::text AS started,
           pg_advisory_lock(pid, ${ownerLockId('started')}) AS locked,
           set_config('tcp_keepalives_idle', $2, false) AS idle,
           set_config('tcp_keepalives_interval', $3, false) AS interval,
           set_config('tcp_keepalives_count', '3', false) AS count,
           set_config('tcp_user_timeout', $4, false) AS user_timeout
         FROM me WHERE started IS NOT NULL`,
        [pooled, String(keepaliveIdleS), String(keepaliveIntervalS), String(userTimeoutMs)],
      ),
    /**
     * Renews every lease of this process in one statement, and re-asserts them after the lease
     * session was replaced (the new session's identity goes on the rows). Only a lease whose
     * attempt still runs (key and running epoch match) is renewed; a key missing from the result
     * was taken over meanwhile. It reads back each key's operator request too: a process that
     * missed the NOTIFY (its session was down) obeys at its next renewal, which follows a
     * reconnection at once. `key = ANY($1)` with `state = 'running'` lets the rows be found
     * through the index of running keys (migration 16), whatever the join's estimate: a hash
     * join would read the whole table on every renewal, and the primary key grows with history.
     * Only a running row has a running epoch, so the state adds no condition of its own.
     */
    renew: (
      keys: string[],
      epochs: number[],
      pid: number | null,
      started: string | null,
      ttlMs: number,
    ) =>
      q(
        `UPDATE ${table} AS c SET owner_pid = $3, owner_started = $4::timestamptz,
           lease_expires_at = clock_timestamp() + $5 * interval '1 millisecond'
         FROM unnest($1::text[], $2::bigint[]) AS l(key, epoch)
         WHERE c.key = ANY($1::text[]) AND c.state = '${running}' AND c.key = l.key
           AND c.running_epoch = l.epoch
         RETURNING c.key, c.control`,
        [keys, epochs, pid, started, ttlMs],
      ),

    // --- progress across processes ------------------------------------------------------------
    // Progress on one channel, operators' requests on another. A process listens on each only
    // while something in it subscribes: every NOTIFY wakes every listening backend, so workers
    // that listened to progress would each receive every other worker's progress.
    ping: () => q(`SELECT 1`),
    listen: (which: 'progress' | 'control') =>
      q(`LISTEN "${which === 'progress' ? channel : controlChannel}"`),
    unlisten: (which: 'progress' | 'control') =>
      q(`UNLISTEN "${which === 'progress' ? channel : controlChannel}"`),
    /**
     * Leaves a borrowed connection as the pool lent it: no LISTEN, no owner's lock, default
     * socket probes.
     */
    resetSession: () =>
      q(
        `UNLISTEN *; SELECT pg_advisory_unlock_all(); RESET tcp_keepalives_idle;
         RESET tcp_keepalives_interval; RESET tcp_keepalives_count; RESET tcp_user_timeout`,
      ),
    /** The sessions that block `pid` (for the log line of a stalled statement). */
    blockingPids: (pid: number) => q(`SELECT pg_blocking_pids($1) AS pids`, [pid]),
    /** Cancels the statement a connection of the library runs (a statement timeout). */
    cancelBackend: (pid: number) => q(`SELECT pg_cancel_backend($1) AS cancelled`, [pid]),
    /**
     * One statement for every key that changed since the last flush: `keys` always, `advanced`
     * (keys whose progress alone moved) only while some process watches. Without a watcher the
     * statement notifies nothing, so its transaction commits nothing (no WAL flush, no share
     * of the cluster's notify lock). Returns `watched`: whether a watcher was there, so that
     * the process can hold its next advances back for a while (PendingAnnouncements).
     */
    notify: (keys: string[], advanced: string[]) =>
      q(
        `WITH w AS MATERIALIZED (SELECT ${someoneWatches(schema)} AS watched),
              sent AS (SELECT pg_notify($1, k) FROM unnest($2::text[]) AS k
                       UNION ALL
                       SELECT pg_notify($1, k) FROM unnest($3::text[]) AS k, w WHERE w.watched)
         SELECT w.watched, (SELECT count(*) FROM sent)::int AS sent FROM w`,
        [channel, keys, advanced],
      ),
    /** This process watches for `seconds` more (renewed while it does); old rows of others go. */
    watching: (process: string, seconds: number) =>
      q(
        `WITH gone AS (DELETE FROM ${watcher}
                        WHERE until < clock_timestamp() - interval '1 hour' AND process <> $1)
         INSERT INTO ${watcher} (process, until)
         VALUES ($1, clock_timestamp() + make_interval(secs => $2))
         ON CONFLICT (process) DO UPDATE SET until = EXCLUDED.until`,
        [process, seconds],
      ),
    /** This process watches no more. */
    unwatch: (process: string) => q(`DELETE FROM ${watcher} WHERE process = $1`, [process]),
  };
}
