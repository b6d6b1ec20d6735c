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
  // One line, whatever went wrong: each problem, then where the options are listed.
  process.stderr.write(
    `demo: ${parsed.problems.join('; ')} (\`npm run demo -- --help\` lists the options)\n`,
  );
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
