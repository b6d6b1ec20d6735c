// Every SQL statement of the core, one file per job under sql/ (the schema's names and the two
// statement builders in sql/statement-kit.ts); this file puts them together for one schema.
import { assertSchemaName } from './checkpoint.validation.js';
import { controlSql } from './sql/control.sql.js';
import { keysSql } from './sql/keys.sql.js';
import { ownershipSql } from './sql/ownership.sql.js';
import { sessionSql } from './sql/session.sql.js';
import { statementKit } from './sql/statement-kit.js';

export { FENCED_ADVANCE, HANDED_BACK } from './sql/ownership.sql.js';
export type { Query } from './sql/statement-kit.js';
export { someoneWatches } from './sql/statement-kit.js';

/** Builds the statements for one schema. */
export function checkpointSql(schema: string) {
  assertSchemaName(schema);
  const kit = statementKit(schema);
  return {
    schema,
    ...sessionSql(kit),
    ...ownershipSql(kit),
    ...controlSql(kit),
    ...keysSql(kit),
  };
}

export type CheckpointSql = ReturnType<typeof checkpointSql>;
