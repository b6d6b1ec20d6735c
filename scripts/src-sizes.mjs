// The largest files of src/, as README's Development section shows them (the figures are
// `wc -l`'s: newlines per file). `node scripts/src-sizes.mjs` prints them; with `--write` it
// puts them into README between its src-sizes markers.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

files.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file));
const total = files.reduce((sum, f) => sum + f.lines, 0);
const date = new Date().toISOString().slice(0, 10);
const table = [
  `The largest files (\`node scripts/src-sizes.mjs\`: \`wc -l\`, ${files.length} files and ${total.toLocaleString('en-US')} lines in \`src/\`, measured ${date}):`,
  '',
  ...aligned([
    ['file', 'lines'],
    ...files.slice(0, 6).map((f) => [`\`${f.file}\``, String(f.lines)]),
  ]),
].join('\n');

/** A markdown table with padded columns, as prettier writes it. */
function aligned(rows) {
  const widths = rows[0].map((_, i) => Math.max(3, ...rows.map((row) => row[i].length)));
  const line = (cells) => `| ${cells.map((cell, i) => cell.padEnd(widths[i])).join(' | ')} |`;
  return [line(rows[0]), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)];
}

if (process.argv.includes('--write')) {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const pattern = /(<!-- src-sizes -->\n)[\s\S]*?(\n<!-- \/src-sizes -->)/;
  if (!pattern.test(readme)) throw new Error('README.md has no <!-- src-sizes --> markers');
  writeFileSync(join(root, 'README.md'), readme.replace(pattern, `$1\n${table}\n$2`));
} else {
  process.stdout.write(`${table}\n`);
}
