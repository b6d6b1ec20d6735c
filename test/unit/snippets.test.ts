// Every TypeScript block of README.md and docs/*.md is a compiled file: the whole of a file under
// examples/, or a run of whole lines copied from one, named by a marker line just before it:
//   <!-- examples/readme/one-screen.ts -->
// `npm run typecheck` compiles examples/ under the strict tsconfig.json, and
// test/e2e/package.test.ts compiles the same files again in a fresh application that installed
// the packed library. No exemptions: a block without a marker, or one that drifted from its file,
// fails here.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { pages, root, snippets } from '../support/snippets.js';

const all = pages().flatMap(snippets);

/** Whether `code` is the whole of `source`, or a run of its whole lines. */
function shownFrom(code: string, source: string): 'whole' | 'excerpt' | undefined {
  if (code === source.trimEnd()) return 'whole';
  return `\n${source}`.includes(`\n${code}\n`) && code.trim() !== '' ? 'excerpt' : undefined;
}

describe('the snippets of README.md and docs/', () => {
  it('are found on every page that has TypeScript', () => {
    assert.ok(all.length >= 12, `found ${all.length} snippets`);
    assert.ok(all.some((snippet) => snippet.where.startsWith('README.md:')));
  });

  it('are each fenced as ts and name their file with a marker', () => {
    assert.deepEqual(
      all.filter((snippet) => snippet.fence !== 'ts').map((snippet) => snippet.where),
      [],
      'fence TypeScript as ```ts',
    );
    assert.deepEqual(
      all.filter((snippet) => snippet.file === undefined).map((snippet) => snippet.where),
      [],
      'a ```ts block without an <!-- examples/<file>.ts --> marker',
    );
  });

  it('are each the whole of their file under examples/, or whole lines copied from it', () => {
    for (const snippet of all) {
      const file = snippet.file as string;
      assert.ok(existsSync(`${root}${file}`), `${snippet.where}: ${file} does not exist`);
      const source = readFileSync(`${root}${file}`, 'utf8');
      assert.ok(
        shownFrom(snippet.code, source) !== undefined,
        `${snippet.where} differs from ${file}: copy it again`,
      );
    }
  });

  it('come from files that the strict tsconfig.json compiles', () => {
    const tsconfig = JSON.parse(readFileSync(`${root}tsconfig.json`, 'utf8')) as {
      compilerOptions: { strict?: boolean };
      include: string[];
      exclude?: string[];
    };
    assert.equal(tsconfig.compilerOptions.strict, true);
    assert.ok(tsconfig.include.includes('examples'));
    assert.equal(tsconfig.exclude, undefined);
  });

  it('show every file of examples/readme/ whole', () => {
    const whole = new Set(
      all
        .filter((snippet) => {
          const source = readFileSync(`${root}${snippet.file as string}`, 'utf8');
          return shownFrom(snippet.code, source) === 'whole';
        })
        .map((snippet) => snippet.file),
    );
    for (const name of readdirSync(`${root}examples/readme`)) {
      assert.ok(whole.has(`examples/readme/${name}`), `no page shows examples/readme/${name}`);
    }
  });
});
