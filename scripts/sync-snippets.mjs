// Copies each whole-file snippet of README.md and docs/*.md again from the file its marker names
// (`<!-- examples/readme/x.ts -->` before a ```ts block): `node scripts/sync-snippets.mjs`.
// Files under examples/readme/ and examples/testing/ are shown whole; other markers name a file
// that a block quotes only in part, and are left as they are.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const pages = [
  'README.md',
  ...readdirSync(`${root}docs`)
    .filter((n) => n.endsWith('.md'))
    .map((n) => `docs/${n}`),
];
const MARKER = /^<!-- (examples\/(?:readme|testing)\/[\w./-]+\.ts) -->$/;

for (const page of pages) {
  const lines = readFileSync(`${root}${page}`, 'utf8').split('\n');
  let changed = false;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```ts') continue;
    const end = lines.indexOf('```', i + 1);
    const marker = MARKER.exec(lines[i - 1] ?? '') ?? MARKER.exec(lines[i - 2] ?? '');
    if (marker !== null) {
      const file = readFileSync(`${root}${marker[1]}`, 'utf8').trimEnd().split('\n');
      if (lines.slice(i + 1, end).join('\n') !== file.join('\n')) changed = true;
      lines.splice(i + 1, end - i - 1, ...file);
      i += file.length + 1;
    } else i = end;
  }
  if (changed) {
    writeFileSync(`${root}${page}`, lines.join('\n'));
    process.stdout.write(`${page}: copied again\n`);
  }
}
