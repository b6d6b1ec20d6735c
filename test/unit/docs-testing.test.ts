// docs/testing.md's TypeScript snippets are whole files under examples/testing/, which
// `npm run typecheck` compiles (and test/e2e/package.test.ts runs in a consumer application).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const MARKER = /^<!-- (examples\/testing\/[\w.-]+\.ts) -->$/;

describe('docs/testing.md', () => {
  it('shows each TypeScript snippet as the whole of its file under examples/testing/', () => {
    const lines = readFileSync(`${root}docs/testing.md`, 'utf8').split('\n');
    let shown = 0;
    for (let i = 0; i < lines.length; i++) {
      if (lines[i] !== '```ts') continue;
      const end = lines.indexOf('```', i + 1);
      const marker = MARKER.exec(lines[i - 1] ?? '') ?? MARKER.exec(lines[i - 2] ?? '');
      assert.ok(marker, `docs/testing.md:${i + 1}: a snippet without an examples/testing marker`);
      const file = readFileSync(`${root}${marker[1]}`, 'utf8').trimEnd();
      assert.equal(lines.slice(i + 1, end).join('\n'), file, `docs/testing.md:${i + 1}`);
      shown += 1;
      i = end;
    }
    assert.ok(shown >= 1);
  });
});
