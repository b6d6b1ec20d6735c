import { query, testDatabase } from './test-database.js';
import { testingSql } from './testing.sql.js';

/** The database as it was: put back with `restore()`, forgotten with `drop()`. */
export interface SavedDatabase {
  restore(): Promise<void>;
  drop(): Promise<void>;
}

/**
 * The testing module's schema: created before TypeORM and the checkpoint module start (they
 * migrate it), dropped with pg-boss's at `app.close()`, after pg-boss stopped.
 */
export class TestSchema {
  private saves = 0;
  private opened?: Promise<string>;
  private openedUrl?: string;

  constructor(
    /** The schema of this testing module: the library's tables and the application's. */
    readonly name: string,
  ) {}

  /** Creates the schema (once) on the test database; resolves with its connection string. */
  open(): Promise<string> {
    this.opened ??= testDatabase().then(async ({ url }) => {
      await query(url, testingSql.createSchema(this.name));
      this.openedUrl = url;
      return url;
    });
    return this.opened;
  }

  /** Connection string of the test database (once open). */
  get url(): string {
    return this.openedUrl ?? '';
  }

  /** pg-boss's schema beside it. */
  get bossSchema(): string {
    return `${this.name}_boss`;
  }

  async drop(): Promise<void> {
    if (this.openedUrl === undefined) return;
    await query(this.url, testingSql.dropSchema(this.name), testingSql.dropSchema(this.bossSchema));
  }

  /**
   * Copies every table of the testing schema (the library's and the application's) and of
   * pg-boss's, with the sequences' positions, so that a second run starts from the same rows
   * and the same jobs.
   */
  async save(): Promise<SavedDatabase> {
    const saved = ++this.saves;
    const parts = await Promise.all(
      [this.name, this.bossSchema].map(async (schema) => ({
        schema,
        copy: `${this.name}_saved_${saved}${schema === this.name ? '' : '_boss'}`,
        tables: (await query<{ name: string }>(this.url, testingSql.tables(schema))).map(
          (row) => row.name,
        ),
        sequences: await query<{ name: string; lastValue: string | null }>(
          this.url,
          testingSql.sequences(schema),
        ),
      })),
    );
    const present = parts.filter((part) => part.tables.length > 0);
    await query(
      this.url,
      ...present.flatMap(({ schema, copy, tables }) => [
        testingSql.createSchema(copy),
        ...tables.map((table) => testingSql.copyTable(schema, copy, table)),
      ]),
    );
    return {
      restore: async () => {
        await query(
          this.url,
          ...present.flatMap(({ schema, copy, tables, sequences }) => [
            testingSql.truncate(schema, tables),
            ...tables.map((table) => testingSql.restoreTable(copy, schema, table)),
            ...sequences.map((sequence) =>
              testingSql.setSequence(schema, sequence.name, sequence.lastValue),
            ),
          ]),
        );
      },
      drop: async () => {
        await query(this.url, ...present.map(({ copy }) => testingSql.dropSchema(copy)));
      },
    };
  }
}
