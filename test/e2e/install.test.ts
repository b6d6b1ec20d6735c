// The library as a newcomer gets it: `npm pack` of the built dist/, installed in a fresh
// application with exactly README's install line, every snippet of README and docs/ copied in
// and type-checked under README's tsconfig, then an application with the HTTP and health modules
// booted on DATABASE_URL. Also: a subpath whose packages are missing names what to install.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DATABASE_URL, dropSchema, uniqueSchema } from '../support/database.js';
import { pages, root, snippets } from '../support/snippets.js';

const app = mkdtempSync(join(tmpdir(), 'checkpoint-fresh-app-'));
const schema = uniqueSchema('fresh');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

after(async () => {
  rmSync(app, { recursive: true, force: true });
  await dropSchema(schema);
  await dropSchema(`${schema}_boss`);
});

/** A page's install commands, as words (`npm install nestjs-checkpoint ...`), comments left out. */
function installLines(page: string): string[][] {
  return readFileSync(join(root, page), 'utf8')
    .split('\n')
    .filter((line) => /^npm (install|i) /.test(line))
    .map((line) => (line.split('#')[0] ?? '').trim().split(/\s+/));
}

/** README's tsconfig block, parsed. */
function readmeTsconfig(): { compilerOptions: Record<string, unknown> } {
  const match = /```json\n(\{\n {2}"compilerOptions"[\s\S]*?)```/.exec(readme);
  assert.ok(match, 'README shows a tsconfig');
  return JSON.parse(match[1] ?? '') as { compilerOptions: Record<string, unknown> };
}

/** An example file as the application has it: the library imported by its package name. */
function asInstalled(source: string): string {
  return source
    .replace(/'(?:\.\.\/)+src\/index\.js'/g, "'nestjs-checkpoint'")
    .replace(/'(?:\.\.\/)+src\/(http|health|testing)\/index\.js'/g, "'nestjs-checkpoint/$1'");
}

/** Copies `file` (under examples/) into src/ of the app, with the example files it imports. */
function copyExample(file: string, copied: Set<string>): void {
  if (copied.has(file)) return;
  copied.add(file);
  const source = readFileSync(join(root, file), 'utf8');
  const target = join(app, 'src', relative('examples', file));
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, asInstalled(source));
  for (const [, path] of source.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) {
    const imported = join(dirname(file), `${path}.ts`);
    if (imported.startsWith('examples/')) copyExample(imported, copied);
  }
}

function node(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(process.execPath, args, { cwd: app, encoding: 'utf8', env });
}

describe('a fresh application', () => {
  before(() => {
    // The packed library, installed with README's line (the npm cache makes it quick).
    const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', app], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'fresh-app', private: true, type: 'module' }),
    );
    // README's lines as they stand (the library's name is the tarball), then docs/testing.md's.
    const lines = [...installLines('README.md'), ...installLines('docs/testing.md')];
    assert.deepEqual(lines[0]?.slice(0, 3), ['npm', 'install', 'nestjs-checkpoint']);
    assert.equal(lines.length, 3);
    for (const [, ...args] of lines) {
      const words = args.map((word) => (word === 'nestjs-checkpoint' ? join(app, packed) : word));
      execFileSync('npm', [...words, '--prefer-offline', '--no-audit', '--no-fund'], {
        cwd: app,
        stdio: 'ignore',
      });
    }
  });

  it("type-checks every snippet of README and docs/ under README's tsconfig", () => {
    const copied = new Set<string>();
    for (const page of pages()) {
      for (const snippet of snippets(page)) copyExample(snippet.file as string, copied);
    }
    assert.ok(copied.has('examples/readme/one-screen.ts'));
    copyExample('examples/readme/operating.ts', copied);
    writeFileSync(join(app, 'src', 'boot.ts'), BOOT);
    const { compilerOptions } = readmeTsconfig();
    assert.equal(compilerOptions.strict, true);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          ...compilerOptions,
          // Where the files are, and Node's types from this checkout (the snippets read process.env).
          rootDir: 'src',
          outDir: 'dist',
          types: ['node'],
          typeRoots: [join(root, 'node_modules', '@types')],
        },
        include: ['src'],
      }),
    );
    const tsc = node([join(root, 'node_modules/typescript/bin/tsc'), '-p', app]);
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
    assert.ok(existsSync(join(app, 'dist', 'boot.js')));
    assert.ok(copied.size >= 12, `${copied.size} files`);
  });

  it('boots the HTTP and health modules on DATABASE_URL', () => {
    const boot = node(['dist/boot.js'], {
      ...process.env,
      DATABASE_URL,
      CHECKPOINT_SCHEMA: schema,
    });
    assert.equal(boot.status, 0, boot.stdout + boot.stderr);
    const answers = JSON.parse(boot.stdout.trim().split('\n').at(-1) ?? '') as Record<
      string,
      unknown
    >;
    assert.deepEqual(answers, {
      health: 200,
      checkpoint: 'up',
      keys: 401, // behind the application's guard: nobody is signed in
      page: 200,
    });
  });

  for (const [entry, missing, message] of [
    [
      'nestjs-checkpoint/http',
      ['class-transformer'],
      'nestjs-checkpoint/http needs class-transformer, which is not installed: npm install class-transformer@^0.5',
    ],
    [
      'nestjs-checkpoint/http',
      ['class-transformer', '@nestjs/platform-express'],
      'nestjs-checkpoint/http needs class-transformer and @nestjs/platform-express, which are not installed: npm install class-transformer@^0.5 @nestjs/platform-express@^12',
    ],
    [
      'nestjs-checkpoint/health',
      ['@nestjs/terminus'],
      'nestjs-checkpoint/health needs @nestjs/terminus, which is not installed: npm install @nestjs/terminus@^12',
    ],
  ] as const) {
    it(`${entry} without ${missing.join(' and ')} names what to install`, () => {
      const moved = missing.map((name) => join(app, 'node_modules', name));
      for (const path of moved) renameSync(path, `${path}.away`);
      try {
        const loaded = node([
          '--input-type=module',
          '-e',
          `try { await import('${entry}'); } catch (error) { console.log(JSON.stringify({ name: error.name, message: error.message, packages: error.packages })); }`,
        ]);
        assert.equal(loaded.status, 0, loaded.stderr);
        assert.deepEqual(JSON.parse(loaded.stdout), {
          name: 'CheckpointPeerMissingError',
          message,
          packages: missing,
        });
      } finally {
        for (const path of moved) renameSync(`${path}.away`, path);
      }
    });
  }

  it('loads both subpaths again once the packages are back', () => {
    const loaded = node([
      '--input-type=module',
      '-e',
      "await import('nestjs-checkpoint/http'); await import('nestjs-checkpoint/health'); console.log('ok')",
    ]);
    assert.equal(loaded.stdout.trim(), 'ok', loaded.stderr);
  });
});

/** The application booted: README's operating example's guards and health controller. */
const BOOT = `import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CheckpointModule } from 'nestjs-checkpoint';
import { CheckpointHealthModule } from 'nestjs-checkpoint/health';
import { CheckpointHttpModule } from 'nestjs-checkpoint/http';
import { HealthController, OperatorGuard, SignedInGuard } from './readme/operating.js';

const url = process.env.DATABASE_URL ?? '';
const schema = process.env.CHECKPOINT_SCHEMA ?? '';

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url }),
    CheckpointModule.forRoot({ schema, boss: { connectionString: url, schema: \`\${schema}_boss\` } }),
    CheckpointHttpModule.forRoot({ path: 'ops/checkpoints', guard: SignedInGuard, controlGuard: OperatorGuard }),
    TerminusModule,
    CheckpointHealthModule.forRoot({ stallMs: 60_000 }),
  ],
  controllers: [HealthController],
})
class BootModule {}

const app = await NestFactory.create(BootModule, { logger: ['error'] });
await app.listen(0, '127.0.0.1');
const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
const health = await fetch(\`\${base}/health\`);
const body = (await health.json()) as { info?: { checkpoint?: { status?: string } } };
const keys = await fetch(\`\${base}/ops/checkpoints/api/keys\`);
const page = await fetch(\`\${base}/ops/checkpoints/\`);
await app.close();
process.stdout.write(
  JSON.stringify({ health: health.status, checkpoint: body.info?.checkpoint?.status, keys: keys.status, page: page.status }) + '\\n',
);
`;
