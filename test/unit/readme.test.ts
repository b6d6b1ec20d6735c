// README's TypeScript snippets are the files under examples/readme/, which `npm run typecheck`
// compiles: a snippet that does not compile is a failing build, and one that drifts from its
// file is a failing test. Each snippet follows a marker line naming its file:
//   <!-- examples/readme/one-screen.ts -->
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');
const MARKER = /^<!-- (examples\/readme\/[\w-]+\.ts) -->$/;

interface Snippet {
  line: number;
  /** The `## ` section it stands in. */
  section: string;
  file: string | undefined;
  code: string;
}

/**
 * Sections whose fragments are not whole files yet, each with where its code is type-checked
 * instead (parts of those files). Their owners (issues 11, 12 and 13) are to turn them into files
 * under examples/readme/; then this list is empty again.
 */
const FRAGMENTS_ALLOWED = new Map([
  ['## Runs', 'examples/screening-runs.service.ts'],
  ['## Items that fail', 'examples/failing-items.service.ts'],
  // Regions of whole example applications that test/e2e/examples-boss.test.ts boots; the
  // regions are checked against README by test/unit/readme-examples.test.ts (issue 14).
  ['## Apps that already run pg-boss', 'examples/pg-boss/*.ts'],
]);

function snippets(): Snippet[] {
  const lines = readme.split('\n');
  const found: Snippet[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.startsWith('## ')) section = lines[i] ?? '';
    if (lines[i] !== '```ts') continue;
    const end = lines.indexOf('```', i + 1);
    // The marker sits on the line before the fence, or before the blank line that precedes it.
    const marker = MARKER.exec(lines[i - 1] ?? '') ?? MARKER.exec(lines[i - 2] ?? '');
    found.push({
      line: i + 1,
      section,
      file: marker?.[1],
      code: lines.slice(i + 1, end).join('\n'),
    });
    i = end;
  }
  return found;
}

describe('README snippets', () => {
  it('are each the whole of a file under examples/readme/, which the build type-checks', () => {
    const all = snippets();
    assert.ok(all.length >= 6, `found ${all.length} snippets`);
    const unmarked = all.filter(
      (snippet) => snippet.file === undefined && !FRAGMENTS_ALLOWED.has(snippet.section),
    );
    assert.deepEqual(
      unmarked.map((snippet) => `README.md:${snippet.line}`),
      [],
      'a ```ts snippet without a <!-- examples/readme/<file>.ts --> marker',
    );
    for (const snippet of all) {
      if (snippet.file === undefined) continue;
      const file = readFileSync(`${root}${snippet.file}`, 'utf8').trimEnd();
      assert.equal(snippet.code, file, `README.md:${snippet.line} differs from ${snippet.file}`);
    }
  });

  it('show every file of examples/readme/', () => {
    const shown = new Set(snippets().map((snippet) => snippet.file));
    for (const file of readdirSync(`${root}examples/readme`)) {
      assert.ok(
        shown.has(`examples/readme/${file}`),
        `README does not show examples/readme/${file}`,
      );
    }
  });
});
