// The TypeScript blocks of README.md and docs/*.md, each with the examples/ file its marker names
// (test/unit/snippets.test.ts checks them; test/e2e/package.test.ts compiles them in a fresh app).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../../', import.meta.url));
const MARKER = /^<!-- (examples\/[\w./-]+\.ts) -->$/;
const TS_FENCE = /^```(ts|typescript|tsx|mts|cts)\s*$/;

/** The pages whose snippets are checked: README and every guide. */
export function pages(): string[] {
  const docs = readdirSync(`${root}docs`)
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

/** A TypeScript block of a page and the file its marker names. */
export interface Snippet {
  /** `page:line` of the opening fence. */
  where: string;
  fence: string;
  file: string | undefined;
  code: string;
}

export function snippets(page: string): Snippet[] {
  const lines = readFileSync(`${root}${page}`, 'utf8').split('\n');
  const found: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = TS_FENCE.exec(lines[i] ?? '');
    if (fence === null) continue;
    const end = lines.indexOf('```', i + 1);
    assert.ok(end > i, `${page}:${i + 1}: a block that never closes`);
    // The marker sits on the line before the fence, or before the blank line that precedes it.
    const marker = MARKER.exec(lines[i - 1] ?? '') ?? MARKER.exec(lines[i - 2] ?? '');
    found.push({
      where: `${page}:${i + 1}`,
      fence: fence[1] ?? '',
      file: marker?.[1],
      code: lines.slice(i + 1, end).join('\n'),
    });
    i = end;
  }
  return found;
}
