import type { CheckpointMigration } from './checkpoint.migrations.js';

/** Chunk states a run counts, each in a column `chunks_<state>` of the run row. */
const COUNTED = ['pending', 'running', 'released', 'paused', 'completed', 'failed', 'cancelled'];

/**
 * Chunk counts kept on the run row, so that a list of runs reads one row per run instead of
 * summing the chunks of every run. A trigger moves them in the statement (and so the transaction)
 * that inserts a chunk, changes its state or deletes it, whichever room of the library or
 * operator's statement does it. It fires only on statements that set `state`, `attempt` or
 * `run_id` and only for rows of a run: an advance sets none of them and pays nothing. Item counts
 * are not kept here: every advance moves them, and all the chunks of a run would then queue on
 * one row; a run's items are summed over its own chunks (the run_id index).
 *
 * `chunks_started` counts chunks with an attempt. The trigger is created before the counts are
 * filled in, in this migration's transaction: its lock on the checkpoint table holds writers back
 * until both are done, so no change slips between them.
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
    const delta = (sign: '+' | '-', row: string) =>
      [
        ...COUNTED.map((state) => `chunks_${state} = chunks_${state} ${sign} ${is(row, state)}`),
        `chunks_started = chunks_started ${sign} ${started(row)}`,
      ].join(', ');
    const move = [
      ...COUNTED.map(
        (state) => `chunks_${state} = chunks_${state} + ${is('NEW', state)} - ${is('OLD', state)}`,
      ),
      `chunks_started = chunks_started + ${started('NEW')} - ${started('OLD')}`,
    ].join(', ');
    return [
      `ALTER TABLE ${run} ${columns
        .map((column) => `ADD COLUMN ${column} integer NOT NULL DEFAULT 0`)
        .join(', ')}`,
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
      `CREATE TRIGGER run_chunk_changed AFTER UPDATE OF state, attempt, run_id ON ${checkpoint}
         FOR EACH ROW WHEN ((OLD.run_id IS NOT NULL OR NEW.run_id IS NOT NULL)
           AND (OLD.state IS DISTINCT FROM NEW.state
                OR (OLD.attempt > 0) IS DISTINCT FROM (NEW.attempt > 0)
                OR OLD.run_id IS DISTINCT FROM NEW.run_id))
         EXECUTE FUNCTION ${fn}()`,
      `CREATE TRIGGER run_chunk_deleted AFTER DELETE ON ${checkpoint}
         FOR EACH ROW WHEN (OLD.run_id IS NOT NULL) EXECUTE FUNCTION ${fn}()`,
      `UPDATE ${run} r SET ${columns.map((column) => `${column} = s.${column}`).join(', ')}
       FROM (SELECT run_id,
               ${COUNTED.map((state) => `count(*) FILTER (WHERE state = '${state}')::int AS chunks_${state}`).join(',\n               ')},
               count(*) FILTER (WHERE attempt > 0)::int AS chunks_started
             FROM ${checkpoint} WHERE run_id IS NOT NULL GROUP BY run_id) s
       WHERE r.id = s.run_id`,
    ];
  },
};
