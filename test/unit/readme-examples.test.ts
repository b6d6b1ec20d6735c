// README's code for pg-boss comes from files under examples/ that CI compiles and tests: every
// `// #region <name>` of those files must appear in README.md as it is.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';

const root = new URL('../../../', import.meta.url);
const files = [
  'examples/pg-boss/own-instance.ts',
  'examples/pg-boss/borrowed-instance.ts',
  'examples/pg-boss/hand-written.ts',
];

function regions(source: string): Map<string, string> {
  const found = new Map<string, string>();
  const pattern = /^\/\/ #region (\S+)\n([\s\S]*?)^\/\/ #endregion \1$/gm;
  for (const match of source.matchAll(pattern)) found.set(match[1] ?? '', match[2] ?? '');
  return found;
}

describe('README shows the compiled examples', () => {
  for (const file of files) {
    it(file, async () => {
      const readme = await readFile(new URL('README.md', root), 'utf8');
      const source = await readFile(new URL(file, root), 'utf8');
      const found = regions(source);
      assert.ok(found.size > 0, `${file} has a #region`);
      for (const [name, code] of found) {
        assert.ok(
          readme.includes('```ts\n' + code + '```'),
          `README.md lacks region "${name}" of ${file} as it stands; copy it again`,
        );
      }
    });
  }
});
