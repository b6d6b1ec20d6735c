// One demo at a time on a database: a second one would join the first one's run (ignoring its
// own flags) or stop the embedded server under it. The lock is a session-level advisory lock, so
// a demo that crashes (even SIGKILL) lets go of it the moment PostgreSQL sees its connection end.
import pg from 'pg';

/** First half of the two-key advisory lock: "demo" in ASCII, apart from the library's locks. */
const DEMO_LOCK_SPACE = 0x64656d6f;
const APPLICATION_NAME = 'nestjs-checkpoint demo';

/** The demo's hold on its database; ends with `release()` or with the process. */
export interface DemoLock {
  /** How many other demos hold their lock on this database (other schemas) right now. */
  others(): Promise<number>;
  release(): Promise<void>;
}

/**
 * Takes the demo lock of `scope` (a schema, or the whole embedded server), or returns a sentence
 * saying which process holds it.
 */
export async function lockDemo(
  url: string,
  scope: string,
): Promise<{ lock: DemoLock } | { heldBy: string }> {
  const client = new pg.Client({
    connectionString: url,
    application_name: `${APPLICATION_NAME} pid ${process.pid}`,
  });
  // The demo ends by stopping the server; the lock's connection must not crash the process then.
  client.on('error', () => undefined);
  await client.connect();
  const key = hash(scope);
  const { rows } = await client.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_lock($1::int, $2::int) AS locked',
    [DEMO_LOCK_SPACE, key],
  );
  if (rows[0]?.locked === true) {
    return {
      lock: {
        others: async () => {
          const { rows: held } = await client.query<{ count: number }>(
            `SELECT count(*)::int AS count FROM pg_locks
              WHERE locktype = 'advisory' AND objsubid = 2 AND granted
                AND classid::bigint = $1 AND pid <> pg_backend_pid()`,
            [DEMO_LOCK_SPACE],
          );
          return held[0]?.count ?? 0;
        },
        release: () => client.end().catch(() => undefined),
      },
    };
  }
  const holder = await client.query<{ application_name: string; client_addr: string | null }>(
    `SELECT a.application_name, a.client_addr::text AS client_addr
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
        AND l.classid::bigint = $1 AND l.objid::bigint = $2`,
    [DEMO_LOCK_SPACE, key],
  );
  await client.end();
  const name = holder.rows[0]?.application_name ?? '';
  const pid = /pid (\d+)/.exec(name)?.[1];
  return {
    heldBy: pid === undefined ? 'another demo process' : `the demo process with pid ${pid}`,
  };
}

/** A positive 31-bit FNV-1a hash: stable across runs and processes. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (const char of text) {
    h ^= char.codePointAt(0) ?? 0;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) & 0x7fffffff;
}
