import type { CheckpointMigration } from './migration.interface.js';

/** The rules the CHECK constraints of migrations 1 and 3 stated, each under its old name. */
const RULES: readonly { constraint: string; holds: string; says: string }[] = [
  {
    constraint: 'checkpoint_key_check',
    holds: 'char_length(NEW.key) BETWEEN 1 AND 512',
    says: `'checkpoint key must be 1 to 512 characters, got ' || char_length(NEW.key)`,
  },
  {
    constraint: 'checkpoint_state_check',
    holds: `NEW.state IN ('pending', 'running', 'released', 'paused', 'completed', 'failed',
                          'cancelled')`,
    says: `'checkpoint state ' || quote_literal(NEW.state) || ' is not a state'`,
  },
  {
    constraint: 'checkpoint_control_check',
    holds: `NEW.control IS NULL OR NEW.control IN ('pause', 'cancel')`,
    says: `'checkpoint control ' || quote_literal(NEW.control) || ' is not a request'`,
  },
  ...[
    'current_index',
    'current_batch_index',
    'processed_batches',
    'total_batches',
    'total_items',
    'skipped_items',
  ].map((column) => ({
    constraint: `checkpoint_${column}_check`,
    holds: `NEW.${column} IS NULL OR NEW.${column} >= 0`,
    says: `'checkpoint ${column} must not be negative, got ' || NEW.${column}`,
  })),
];

/**
 * An advance that writes its row and nothing else. PostgreSQL evaluates every CHECK constraint
 * of a table on every UPDATE, whichever columns it sets, and prepares their expressions afresh
 * for each statement: the nine of the checkpoint table took some 20 µs of an advance's 40 µs
 * (measured with pg_stat_statements). They become one BEFORE trigger that fires on inserts and
 * on updates of the columns that change a row's meaning (state, control, key, skipped items),
 * so claims, ends, operators' requests and the ledger still check the whole row, under the old
 * constraint names and SQLSTATE (23514), while an advance and a lease renewal check nothing.
 * The counters an advance writes are validated by the library before they are sent.
 *
 * The run-count trigger of migration 8 fired on updates of `current_index` too, so every
 * advance evaluated its WHEN clause; now it fires when a statement sets `state`, `attempt`,
 * `run_id` or `skipped_items`. The one statement that moves the position of a finished chunk (an
 * operator's rewind) sets `state`, so its counts still move.
 *
 * Live upgrades: dropping a constraint and creating triggers take the table's lock for an
 * instant, with no scan; the runner's lock timeout makes them wait their turn behind workers.
 */
export const leanAdvance: CheckpointMigration = {
  version: 15,
  name: 'lean-advance',
  up: (schema) => {
    const checkpoint = `"${schema}"."checkpoint"`;
    const validate = `"${schema}"."checkpoint_row_valid"`;
    const counts = `"${schema}"."run_chunk_counts"`;
    const checks = RULES.map(
      ({ constraint, holds, says }) => `
         IF NOT (${holds}) THEN
           RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = '${constraint}',
             MESSAGE = ${says};
         END IF;`,
    ).join('');
    return [
      `CREATE FUNCTION ${validate}() RETURNS trigger LANGUAGE plpgsql AS $body$
       BEGIN${checks}
         RETURN NEW;
       END $body$`,
      `CREATE TRIGGER checkpoint_row_valid
         BEFORE INSERT OR UPDATE OF key, state, control, skipped_items ON ${checkpoint}
         FOR EACH ROW EXECUTE FUNCTION ${validate}()`,
      `ALTER TABLE ${checkpoint} ${RULES.map(
        ({ constraint }) => `DROP CONSTRAINT IF EXISTS ${constraint}`,
      ).join(', ')}`,
      `DROP TRIGGER run_chunk_changed ON ${checkpoint}`,
      `CREATE TRIGGER run_chunk_changed
         AFTER UPDATE OF state, attempt, run_id, skipped_items ON ${checkpoint}
         FOR EACH ROW WHEN ((OLD.run_id IS NOT NULL OR NEW.run_id IS NOT NULL)
           AND (OLD.state IS DISTINCT FROM NEW.state
                OR (OLD.attempt > 0) IS DISTINCT FROM (NEW.attempt > 0)
                OR OLD.run_id IS DISTINCT FROM NEW.run_id
                OR (OLD.state IN ('completed', 'cancelled', 'failed')
                    AND (OLD.current_index IS DISTINCT FROM NEW.current_index
                         OR OLD.skipped_items IS DISTINCT FROM NEW.skipped_items))))
         EXECUTE FUNCTION ${counts}()`,
    ];
  },
};
