// `npm run demo` compiles the project only when a source is newer than the last build, so that a
// second run (and `npm run demo -- --help`) starts at once instead of after a full tsc.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const target = process.argv[2] ?? 'build/examples/demo.js';
const sources = ['src', 'examples', 'bench', 'test', 'ormconfig.ts', 'tsconfig.json'];

function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = 0;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

const built = existsSync(target) ? statSync(target).mtimeMs : 0;
if (built === 0 || sources.some((source) => newest(source) > built)) {
  process.stderr.write('Compiling (tsc), once after each change of the sources…\n');
  const result = spawnSync(
    process.execPath,
    ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'],
    {
      stdio: 'inherit',
    },
  );
  process.exit(result.status ?? 1);
}
