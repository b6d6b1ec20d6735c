// `npm run demo`: screen N synthetic items with a checkpointed pg-boss worker, showing a live
// progress bar. Ctrl-C stops gracefully; run it again and it resumes. See `--help`.
// This entry checks the flags before it loads Nest, TypeORM and pg-boss (most of a second), so
// that `--help` and a bad flag answer at once, before any database or server starts.
import { demoHelp, parseDemoFlags } from './demo-flags.js';

const parsed = parseDemoFlags(process.argv.slice(2));
if (parsed.kind === 'help') {
  process.stdout.write(demoHelp());
  process.exit(0);
}
if (parsed.kind === 'invalid') {
  for (const problem of parsed.problems) process.stderr.write(`demo: ${problem}\n`);
  process.stderr.write('Run `npm run demo -- --help` for the options.\n');
  process.exit(2);
}

try {
  const { main } = await import('./demo-main.js');
  await main(parsed.flags);
} catch (error) {
  // An expected failure (no database, say) is one line; the stack helps nobody running a demo.
  process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
