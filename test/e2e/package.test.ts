// The package as users get it: the built dist/ through the exports map, from an ESM and a
// CommonJS consumer; and the shipped migrations run by an application's own TypeORM.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
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

describe('nestjs-checkpoint/testing in a consumer', () => {
  it("installs the packed package and runs the docs' spec with Test.createTestingModule", () => {
    // A fresh application: the packed tarball installed with npm (its peers are this checkout's
    // node_modules, linked in), the demo's handler and entity as its own files, and
    // examples/testing/screening.spec.ts as it stands in docs/testing.md, compiled against the
    // installed package's types and run with node:test on an embedded PostgreSQL (no DATABASE_URL).
    const app = mkdtempSync(join(tmpdir(), 'checkpoint-testing-app-'));
    try {
      const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', app], {
        cwd: root,
        encoding: 'utf8',
      }).trim();
      writeFileSync(
        join(app, 'package.json'),
        JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
      );
      execFileSync(
        'npm',
        [
          'install',
          '--offline',
          '--ignore-scripts',
          '--legacy-peer-deps',
          '--no-audit',
          '--no-fund',
          '--no-package-lock',
          join(app, packed),
        ],
        { cwd: app, stdio: 'ignore' },
      );
      const modules = join(app, 'node_modules');
      assert.ok(existsSync(join(modules, 'nestjs-checkpoint', 'dist', 'testing', 'index.js')));
      for (const entry of readdirSync(join(root, 'node_modules'))) {
        if (entry === 'nestjs-checkpoint' || entry.startsWith('.')) continue;
        symlinkSync(join(root, 'node_modules', entry), join(modules, entry), 'dir');
      }
      mkdirSync(join(app, 'src', 'testing'), { recursive: true });
      const copy = (from: string, to: string, edit = (text: string) => text) =>
        writeFileSync(join(app, to), edit(readFileSync(join(root, from), 'utf8')));
      copy('examples/screening.entities.ts', 'src/screening.entities.ts');
      copy('examples/screening.service.ts', 'src/screening.service.ts', (text) =>
        text.replace("'../src/index.js'", "'nestjs-checkpoint'"),
      );
      copy('examples/testing/screening.spec.ts', 'src/testing/screening.spec.ts');
      writeFileSync(
        join(app, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2023',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            types: ['node'],
            strict: true,
            experimentalDecorators: true,
            emitDecoratorMetadata: true,
            useDefineForClassFields: false,
            skipLibCheck: true,
            rootDir: 'src',
            outDir: 'dist',
          },
          include: ['src'],
        }),
      );
      execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', app], {
        cwd: app,
        encoding: 'utf8',
      });
      const env = { ...process.env, NODE_TEST_CONTEXT: undefined, DATABASE_URL: undefined };
      const output = execFileSync(
        process.execPath,
        ['--test', '--test-reporter=tap', 'dist/testing/screening.spec.js'],
        { cwd: app, encoding: 'utf8', env },
      );
      assert.match(output, /# pass 2\n/, output);
      assert.match(output, /# fail 0\n/, output);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });
});
