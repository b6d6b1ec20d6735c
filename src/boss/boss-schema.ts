import type { PgBoss } from 'pg-boss';
import { CheckpointConfigError } from '../checkpoint.errors.js';

/** pg-boss names its schema unquoted in its SQL; so do the statements that read its job table. */
const BOSS_SCHEMA = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The schema of a PgBoss instance's tables. pg-boss keeps its settings private, but every
 * command that takes a `db` option runs its SQL through it: `getDependencies` (no queue lookup,
 * one statement) is handed an adapter that records the statement's text and answers no rows,
 * and the schema is read from the `FROM <schema>.job_dependency` it names.
 */
export async function bossSchemaOf(boss: PgBoss): Promise<string> {
  let text = '';
  await boss.getDependencies('nestjs-checkpoint', '00000000-0000-0000-0000-000000000000', {
    db: {
      executeSql: (sql: string) => {
        text = sql;
        return Promise.resolve({ rows: [] });
      },
    },
  });
  const schema = /FROM\s+"?([^\s."]+)"?\.job_dependency\b/.exec(text)?.[1];
  if (schema === undefined || !BOSS_SCHEMA.test(schema)) {
    throw new CheckpointConfigError(
      `could not read pg-boss's schema from its SQL (got ${JSON.stringify(text.slice(0, 120))})`,
    );
  }
  return schema;
}
