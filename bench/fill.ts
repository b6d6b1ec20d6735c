// A database as a year of use leaves it, written by generate_series in a few statements (not by
// a loop of calls): completed keys spread over the year, runs of many chunks, a failed-item
// ledger, and keys running now. Used by bench section 11 (at full size) and by the EXPLAIN test
// (small, with the same shape). Runs on one connection with triggers and foreign-key checks off
// (session_replication_role = replica): the run counts that migration 8's trigger would keep are
// written directly, and every reference is valid by construction.
import type pg from 'pg';

/** How much history to write. */
export interface FillSize {
  /** Completed keys outside any run. */
  keys: number;
  /** Completed runs, and the chunks of each (each chunk a completed key). */
  runs: number;
  chunksPerRun: number;
  /** Failed-item ledger rows: 90% on one key (`ledger:big`), the rest on the chunks of `run:ledger`. */
  ledgerRows: number;
  /** Keys running now (state running, owned by `owner`). */
  runningKeys: number;
}

/** The full size of issue 20: 10M keys, 100k runs of 100 chunks, 1M ledger rows, 10k running. */
export const YEAR: FillSize = {
  keys: 10_000_000,
  runs: 100_000,
  chunksPerRun: 100,
  ledgerRows: 1_000_000,
  runningKeys: 10_000,
};

/** The owner the running keys are recorded under (a session the caller names). */
export interface FillOwner {
  pid: number;
  started: string;
}

/**
 * Fills `schema` (migrated, empty) with `size`. Keys and runs are spread over the past year, so
 * that the newest rows are the running keys; then ANALYZE, as autovacuum would have by now.
 */
export async function fillHistory(
  client: pg.ClientBase,
  schema: string,
  size: FillSize,
  owner: FillOwner,
): Promise<void> {
  const s = `"${schema}"`;
  const year = `now() - interval '366 days'`;
  const ledgerChunks = Math.max(1, Math.min(size.chunksPerRun, 100));
  const bigLedger = Math.floor(size.ledgerRows * 0.9);
  const perChunk = Math.floor((size.ledgerRows - bigLedger) / ledgerChunks);
  const statements = [
    `SET session_replication_role = replica`,
    `INSERT INTO ${s}.checkpoint (key, state, epoch, attempt, current_index, current_batch_index,
        processed_batches, total_batches, total_items, result, queue, job_id, created_at, updated_at)
     SELECT 'history:' || g, 'completed', 1, 1, 1000, 10, 10, 10, 1000, '{"items":1000}',
            'history', g::text, t, t + interval '5 minutes'
     FROM generate_series(1, ${size.keys}) g,
          LATERAL (SELECT ${year} + g::float8 / ${Math.max(1, size.keys)} * interval '365 days' AS t) at`,
    `INSERT INTO ${s}.run (id, queue, state, mode, total_items, chunk_count, chunk_size,
        created_at, updated_at, completed_at, completed_hook_at, item_ms,
        chunks_completed, chunks_started, items_settled, settled_at)
     SELECT 'run:' || r, 'history', 'completed', 'queued', 100 * ${size.chunksPerRun},
            ${size.chunksPerRun}, 100, t, t + interval '10 minutes', t + interval '10 minutes',
            t + interval '10 minutes', 1.5, ${size.chunksPerRun}, ${size.chunksPerRun},
            100 * ${size.chunksPerRun}, t + interval '10 minutes'
     FROM generate_series(1, ${size.runs}) r,
          LATERAL (SELECT ${year} + r::float8 / ${Math.max(1, size.runs)} * interval '365 days' AS t) at`,
    `INSERT INTO ${s}.checkpoint (key, state, epoch, attempt, current_index, current_batch_index,
        processed_batches, total_batches, total_items, result, queue, job_id, run_id, run_chunk,
        attempt_started_at, attempt_start_index, created_at, updated_at)
     SELECT 'run:' || r || ':' || c, 'completed', 1, 1, 100, 1, 1, 1, 100, '{"items":100}',
            'history', r || '.' || c, 'run:' || r, c, t, 0, t, t + interval '10 minutes'
     FROM generate_series(1, ${size.runs}) r,
          LATERAL (SELECT ${year} + r::float8 / ${Math.max(1, size.runs)} * interval '365 days' AS t) at,
          generate_series(0, ${size.chunksPerRun - 1}) c`,
    // The ledger: one key with most of it (a redrive pages through it), and one run's chunks.
    `INSERT INTO ${s}.checkpoint (key, state, epoch, attempt, current_index, total_items,
        skipped_items, redrive_requested_at, created_at, updated_at)
     VALUES ('ledger:big', 'released', 1, 1, ${bigLedger}, ${bigLedger}, ${bigLedger},
             now(), ${year}, ${year})`,
    `INSERT INTO ${s}.failed_item (key, item_index, item, error_name, error_message, attempt, failed_at)
     SELECT 'ledger:big', i, jsonb_build_object('id', i), 'RefusedItemError', 'refused item ' || i,
            1, ${year}
     FROM generate_series(0, ${bigLedger - 1}) i`,
    `INSERT INTO ${s}.run (id, queue, state, mode, total_items, chunk_count, chunk_size,
        created_at, updated_at, chunks_released, chunks_started)
     VALUES ('run:ledger', 'history', 'running', 'queued', ${perChunk * ledgerChunks},
             ${ledgerChunks}, ${Math.max(1, perChunk)}, ${year}, ${year}, ${ledgerChunks}, ${ledgerChunks})`,
    `INSERT INTO ${s}.checkpoint (key, state, epoch, attempt, current_index, total_items,
        skipped_items, run_id, run_chunk, created_at, updated_at)
     SELECT 'run:ledger:' || c, 'released', 1, 1, ${perChunk}, ${perChunk}, ${perChunk},
            'run:ledger', c, ${year}, ${year}
     FROM generate_series(0, ${ledgerChunks - 1}) c`,
    `INSERT INTO ${s}.failed_item (key, item_index, item, error_name, error_message, attempt, failed_at)
     SELECT 'run:ledger:' || c, i, jsonb_build_object('id', i), 'RefusedItemError', 'refused', 1, ${year}
     FROM generate_series(0, ${ledgerChunks - 1}) c, generate_series(0, ${perChunk - 1}) i`,
    `INSERT INTO ${s}.checkpoint (key, state, epoch, running_epoch, attempt, owner, queue, job_id,
        dispatch, total_items, current_index, attempt_started_at, owner_pid, owner_started,
        lease_expires_at, created_at, updated_at)
     SELECT 'running:' || g, 'running', 1, 1, 1, 'bench', 'live', g::text, 1, 100000, 0,
            now(), ${Number(owner.pid)}, '${owner.started.replace(/'/g, "''")}'::timestamptz,
            now() + interval '1 hour', now(), now()
     FROM generate_series(1, ${size.runningKeys}) g`,
    `SET session_replication_role = DEFAULT`,
    `ANALYZE ${s}.checkpoint`,
    `ANALYZE ${s}.run`,
    `ANALYZE ${s}.failed_item`,
  ];
  for (const statement of statements) await client.query(statement);
}
