import type { Db } from 'pg-boss';
import type { EntityManager } from 'typeorm';

/** pg-boss's database adapter over a TypeORM transaction: its statements join the transaction. */
export function bossDb(manager: EntityManager): Db {
  return {
    executeSql: async (text: string, values?: unknown[]) => {
      const runner = manager.queryRunner;
      if (runner === undefined) throw new Error('bossDb needs a transactional EntityManager');
      const result = await runner.query(text, values, true);
      return { rows: (result.records ?? []) as never[] };
    },
  };
}
