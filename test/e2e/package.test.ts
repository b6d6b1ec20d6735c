// The package as users get it: the built dist/ through the exports map, from an ESM and a
// CommonJS consumer; and the shipped migrations run by an application's own TypeORM.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DataSource } from 'typeorm';
import {
  CheckpointService,
  checkpointMigrations,
  createCheckpointTypeOrmMigrations,
} from '../../src/index.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const consumer = mkdtempSync(join(tmpdir(), 'checkpoint-consumer-'));
const schemas: string[] = [];

after(async () => {
  rmSync(consumer, { recursive: true, force: true });
  for (const schema of schemas) await dropSchema(schema);
});

describe('the published package', () => {
  it('exports a types entry that exists in dist/', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      exports: { '.': { types: string; default: string } };
      files: string[];
    };
    assert.deepEqual(manifest.files, ['dist']);
    assert.ok(existsSync(join(root, manifest.exports['.'].types)));
    assert.ok(existsSync(join(root, manifest.exports['.'].default)));
  });

  it('loads from an ESM consumer and from a CommonJS consumer', () => {
    mkdirSync(join(consumer, 'node_modules'), { recursive: true });
    symlinkSync(root, join(consumer, 'node_modules', 'nestjs-checkpoint'), 'dir');
    writeFileSync(
      join(consumer, 'esm.mjs'),
      `import { CheckpointModule, CheckpointService, Checkpointed, CheckpointFencedError } from 'nestjs-checkpoint';
       console.log([CheckpointModule, CheckpointService, Checkpointed, CheckpointFencedError].map((x) => typeof x).join(' '));`,
    );
    writeFileSync(
      join(consumer, 'cjs.cjs'),
      `const { CheckpointModule, CheckpointService, Checkpointed, CheckpointFencedError } = require('nestjs-checkpoint');
       console.log([CheckpointModule, CheckpointService, Checkpointed, CheckpointFencedError].map((x) => typeof x).join(' '));`,
    );
    for (const file of ['esm.mjs', 'cjs.cjs']) {
      const output = execFileSync(process.execPath, [file], { cwd: consumer, encoding: 'utf8' });
      assert.equal(output.trim(), 'function function function function', file);
    }
  });
});

describe('migrations run by the application', () => {
  it('TypeORM applies the exported migrations, and the module then finds nothing to do', async () => {
    const schema = uniqueSchema('orm');
    schemas.push(schema);
    const dataSource = new DataSource({
      type: 'postgres',
      url: DATABASE_URL,
      migrations: createCheckpointTypeOrmMigrations(schema),
      migrationsTableName: `${schema}_typeorm_migrations`,
    });
    await dataSource.initialize();
    const applied = await dataSource.runMigrations();
    assert.equal(applied.length, checkpointMigrations.length);
    await dataSource.query(`DROP TABLE "${schema}_typeorm_migrations"`);
    await dataSource.destroy();
    const recorded = await sql<{ version: number }>(`SELECT version FROM "${schema}".migration`);
    assert.deepEqual(
      recorded.map((row) => row.version),
      checkpointMigrations.map((migration) => migration.version),
    );

    const app = await createTestApp({ schema, checkpoint: { migrationsRun: true } });
    await app.get(CheckpointService).saveCheckpoint('k', {
      currentBatchIndex: 0,
      currentIndex: 0,
      processedBatches: 0,
      totalBatches: 1,
    });
    await app.close();
    assert.equal(
      (await sql(`SELECT version FROM "${schema}".migration`)).length,
      checkpointMigrations.length,
    );
  });
});
