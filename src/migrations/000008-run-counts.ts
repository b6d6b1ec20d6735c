import type { CheckpointMigration } from './migration.interface.js';

/** Chunk states a run counts, each in a column `chunks_<state>` of the run row. */
const COUNTED = ['pending', 'running', 'released', 'paused', 'completed', 'failed', 'cancelled'];

/** A chunk in one of these states is done moving: its items count as settled on its run. */
const SETTLED = `('completed', 'cancelled', 'failed')`;

/**
 * Chunk counts kept on the run row, so that a list of runs reads one row per run instead of
 * summing the chunks of every run. A trigger moves them in the statement (and so the
 * transaction) that inserts a chunk, changes its state or deletes it, whichever room of the
 * library or operator's statement does it.
 * - `chunks_<state>`: chunks per state; `chunks_started`: chunks with an attempt;
 * - `items_settled`, `skipped_settled`, `settled_at`: the items, failed items and last update of
 *   the chunks that are done moving (completed, cancelled, failed). A run's progress adds those
 *   of its other chunks, read through a partial index of migration 9 that holds only them: a
 *   finished run reads no chunk at all. The items of moving chunks are not kept here: every
 *   advance moves them, and all the chunks of a run would then queue on one row.
 * The trigger fires only on statements that set `state`, `attempt`, `run_id`, `current_index`
 * or `skipped_items` of a run's row, and calls its function only when a count moves: an advance
 * of a running chunk evaluates one WHEN clause and writes nothing more.
 *
 * The trigger is created before the counts are filled in, in this migration's transaction: its
 * lock on the checkpoint table holds writers back until both are done, so no change slips
 * between them.
 */
export const runCounts: CheckpointMigration = {
  version: 8,
  name: 'run-counts',
  up: (schema) => {
    const run = `"${schema}"."run"`;
    const checkpoint = `"${schema}"."checkpoint"`;
    const fn = `"${schema}"."run_chunk_counts"`;
    const columns = [...COUNTED.map((state) => `chunks_${state}`), 'chunks_started'];
    const is = (row: string, state: string) => `(${row}.state = '${state}')::int`;
    const started = (row: string) => `(${row}.attempt > 0)::int`;
    const settled = (row: string, column: string) =>
      `CASE WHEN ${row}.state IN ${SETTLED} THEN ${row}.${column} ELSE 0 END`;
    const settledAt = (row: string) =>
      `settled_at = CASE WHEN ${row}.state IN ${SETTLED}
                      THEN GREATEST(settled_at, ${row}.updated_at) ELSE settled_at END`;
    const delta = (sign: '+' | '-', row: string) =>
      [
        ...COUNTED.map((state) => `chunks_${state} = chunks_${state} ${sign} ${is(row, state)}`),
        `chunks_started = chunks_started ${sign} ${started(row)}`,
        `items_settled = items_settled ${sign} ${settled(row, 'current_index')}`,
        `skipped_settled = skipped_settled ${sign} ${settled(row, 'skipped_items')}`,
        ...(sign === '+' ? [settledAt(row)] : []),
      ].join(', ');
    const move = [
      ...COUNTED.map(
        (state) => `chunks_${state} = chunks_${state} + ${is('NEW', state)} - ${is('OLD', state)}`,
      ),
      `chunks_started = chunks_started + ${started('NEW')} - ${started('OLD')}`,
      `items_settled = items_settled + ${settled('NEW', 'current_index')} - ${settled('OLD', 'current_index')}`,
      `skipped_settled = skipped_settled + ${settled('NEW', 'skipped_items')} - ${settled('OLD', 'skipped_items')}`,
      settledAt('NEW'),
    ].join(', ');
    return [
      `ALTER TABLE ${run} ${[
        ...columns.map((column) => `ADD COLUMN ${column} integer NOT NULL DEFAULT 0`),
        'ADD COLUMN items_settled bigint NOT NULL DEFAULT 0',
        'ADD COLUMN skipped_settled bigint NOT NULL DEFAULT 0',
        'ADD COLUMN settled_at timestamptz',
      ].join(', ')}`,
      `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $body$
       BEGIN
         IF TG_OP = 'UPDATE' AND OLD.run_id IS NOT DISTINCT FROM NEW.run_id THEN
           UPDATE ${run} SET ${move} WHERE id = NEW.run_id;
           RETURN NULL;
         END IF;
         IF TG_OP <> 'INSERT' AND OLD.run_id IS NOT NULL THEN
           UPDATE ${run} SET ${delta('-', 'OLD')} WHERE id = OLD.run_id;
         END IF;
         IF TG_OP <> 'DELETE' AND NEW.run_id IS NOT NULL THEN
           UPDATE ${run} SET ${delta('+', 'NEW')} WHERE id = NEW.run_id;
         END IF;
         RETURN NULL;
       END $body$`,
      `CREATE TRIGGER run_chunk_inserted AFTER INSERT ON ${checkpoint}
         FOR EACH ROW WHEN (NEW.run_id IS NOT NULL) EXECUTE FUNCTION ${fn}()`,
      `CREATE TRIGGER run_chunk_changed
         AFTER UPDATE OF state, attempt, run_id, current_index, skipped_items ON ${checkpoint}
         FOR EACH ROW WHEN ((OLD.run_id IS NOT NULL OR NEW.run_id IS NOT NULL)
           AND (OLD.state IS DISTINCT FROM NEW.state
                OR (OLD.attempt > 0) IS DISTINCT FROM (NEW.attempt > 0)
                OR OLD.run_id IS DISTINCT FROM NEW.run_id
                OR (OLD.state IN ${SETTLED}
                    AND (OLD.current_index IS DISTINCT FROM NEW.current_index
                         OR OLD.skipped_items IS DISTINCT FROM NEW.skipped_items))))
         EXECUTE FUNCTION ${fn}()`,
      `CREATE TRIGGER run_chunk_deleted AFTER DELETE ON ${checkpoint}
         FOR EACH ROW WHEN (OLD.run_id IS NOT NULL) EXECUTE FUNCTION ${fn}()`,
      `UPDATE ${run} r SET ${[...columns, 'items_settled', 'skipped_settled', 'settled_at']
        .map((column) => `${column} = s.${column}`)
        .join(', ')}
       FROM (SELECT run_id,
               ${COUNTED.map((state) => `count(*) FILTER (WHERE state = '${state}')::int AS chunks_${state}`).join(',\n               ')},
               count(*) FILTER (WHERE attempt > 0)::int AS chunks_started,
               coalesce(sum(current_index) FILTER (WHERE state IN ${SETTLED}), 0) AS items_settled,
               coalesce(sum(skipped_items) FILTER (WHERE state IN ${SETTLED}), 0) AS skipped_settled,
               max(updated_at) FILTER (WHERE state IN ${SETTLED}) AS settled_at
             FROM ${checkpoint} WHERE run_id IS NOT NULL GROUP BY run_id) s
       WHERE r.id = s.run_id`,
    ];
  },
};
