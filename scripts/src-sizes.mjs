// Prints the largest files of src/ and the lines per folder, as README's Development section
// shows them: `node scripts/src-sizes.mjs` (the figures are `wc -l`'s: newlines per file).
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const files = [];
(function walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path);
    else if (entry.name.endsWith('.ts')) {
      const lines = readFileSync(path, 'utf8').split('\n').length - 1;
      files.push({ file: relative(root, path), lines });
    }
  }
})(join(root, 'src'));

files.sort((a, b) => b.lines - a.lines);
const total = files.reduce((sum, f) => sum + f.lines, 0);
process.stdout.write(`${files.length} files, ${total} lines in src/\n\n`);
process.stdout.write('| file | lines |\n| --- | --- |\n');
for (const f of files.slice(0, Number(process.argv[2] ?? 6))) {
  process.stdout.write(`| \`${f.file}\` | ${f.lines} |\n`);
}
