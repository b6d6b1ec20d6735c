/** A statement with its bound values. */
export interface Statement {
  text: string;
  values: unknown[];
}

const q = (text: string, values: unknown[] = []): Statement => ({ text, values });

/**
 * The testing entry point's statements. Schema names are made by `testSchemaName()` (a checked
 * identifier) and quoted; table and sequence names come from the catalog and are quoted too.
 */
export const testingSql = {
  createSchema: (schema: string) => q(`CREATE SCHEMA IF NOT EXISTS "${schema}"`),
  dropSchema: (schema: string) => q(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`),
  /** The ordinary tables of a schema, by name. */
  tables: (schema: string) =>
    q(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY c.relname`,
      [schema],
    ),
  /** The sequences of a schema with their current state. */
  sequences: (schema: string) =>
    q(
      `SELECT sequencename AS name, last_value::text AS "lastValue" FROM pg_sequences
        WHERE schemaname = $1 ORDER BY sequencename`,
      [schema],
    ),
  copyTable: (from: string, to: string, table: string) =>
    q(`CREATE TABLE "${to}"."${table}" AS TABLE "${from}"."${table}"`),
  /** Empties every table named, in one statement (foreign keys between them allowed). */
  truncate: (schema: string, tables: string[]) =>
    q(`TRUNCATE ${tables.map((table) => `"${schema}"."${table}"`).join(', ')} CASCADE`),
  restoreTable: (from: string, to: string, table: string) =>
    q(`INSERT INTO "${to}"."${table}" OVERRIDING SYSTEM VALUE SELECT * FROM "${from}"."${table}"`),
  /** Puts a sequence back where it was (never used: `is_called` false at its start value). */
  setSequence: (schema: string, sequence: string, lastValue: string | null) =>
    lastValue === null
      ? q(`ALTER SEQUENCE "${schema}"."${sequence}" RESTART`)
      : q(`SELECT setval($1, $2::bigint, true)`, [`"${schema}"."${sequence}"`, lastValue]),
};
