// The newcomer's path: the demo, in a short mode against the test database, crashes itself half
// way, then a second run resumes and finishes with every item screened exactly once. Then what a
// newcomer trips over: bad flags, --help, a second demo on the same schema, --fresh.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';

const schema = uniqueSchema('demo');
const demo = fileURLToPath(new URL('../../examples/demo.js', import.meta.url));
const env = { ...process.env, NODE_TEST_CONTEXT: undefined, DATABASE_URL };
const shortRun = ['--items', '2000', '--chunks', '2', '--item-ms', '1', '--schema', schema];

after(async () => {
  await dropSchema(schema);
  await dropSchema(`${schema}_boss`);
});

function runDemo(...args: string[]) {
  const started = performance.now();
  const result = spawnSync(process.execPath, [demo, ...args], {
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return {
    ...result,
    output: `${result.stdout}${result.stderr}`,
    ms: performance.now() - started,
  };
}

async function schemaExists(name: string): Promise<boolean> {
  const rows = await sql('SELECT 1 FROM pg_namespace WHERE nspname = $1', [name]);
  return rows.length > 0;
}

/** The progress lines printed to a pipe must be one per tenth reached, in order. */
function assertOneLinePerTenth(output: string): void {
  const percents = [...output.matchAll(/^progress .*?(\d+)% \|/gm)].map((m) => Number(m[1]));
  assert.ok(percents.length > 0, output);
  const tenths = percents.map((p) => Math.floor(p / 10));
  for (let i = 1; i < tenths.length; i++) {
    assert.ok(
      (tenths[i] ?? 0) > (tenths[i - 1] ?? 0),
      `two progress lines in one tenth: ${percents.join(', ')}`,
    );
  }
}

it('crashes itself half way, then resumes and screens every item exactly once', () => {
  const crashed = runDemo(...shortRun, '--crash-at', '50');
  assert.equal(crashed.signal, 'SIGKILL', crashed.output);
  assert.match(crashed.output, /Starting run \w+: 2,000 items in 2 pg-boss jobs/);
  assert.match(crashed.output, /Simulating a hard crash at \d+%: SIGKILL\./);
  assertOneLinePerTenth(crashed.output);

  const resumed = runDemo(...shortRun, '--workers', '2');
  assert.equal(resumed.status, 0, resumed.output);
  const resumedAt = /Resuming run \w+ at item ([\d,]+) of 2,000 .*attempt (\d+) goes on/.exec(
    resumed.output,
  );
  assert.ok(resumedAt, resumed.output);
  const item = Number(resumedAt[1]?.replace(/,/g, ''));
  assert.ok(item >= 1000 && item < 2000, `resumed at ${item}`);
  // From its first line the bar shows the attempt it announced, not the crashed attempt's.
  const firstBar = /^progress .*\| attempt (\d+)$/m.exec(resumed.output);
  assert.equal(firstBar?.[1], resumedAt[2], resumed.output);
  assertOneLinePerTenth(resumed.output);
  // The attempt it announced is the one it counts at the end.
  assert.match(
    resumed.output,
    new RegExp(`Completed run \\w+: 2,000 items .* over ${resumedAt[2]} attempts\\.`),
  );
  assert.match(
    resumed.output,
    /2,000 decision rows for 2,000 items: 0 duplicates, 0 missing\. Every item was screened exactly once\./,
  );
});

it('refuses bad flags before it starts anything: one line each, exit code 2, no stack', async (t) => {
  const fresh = uniqueSchema('demo_flags');
  const helpHint = ' \\(`npm run demo -- --help` lists the options\\)$';
  const cases: Array<[string[], RegExp]> = [
    [
      ['--crash-at', 'abc'],
      /^demo: --crash-at must be a percentage above 0 and below 100 \(got "abc"\)/,
    ],
    [['--item-ms', 'abc'], /^demo: --item-ms must be a number of milliseconds/],
    [
      ['--items', '0', '--chunks', '1.5'],
      /^demo: --items must be a whole number >= 1 \(got "0"\); --chunks must be a whole number >= 1 \(got "1.5"\)/,
    ],
    [['--workers', '-1'], /^demo: --workers must be a whole number >= 1 \(got "-1"\)/],
    [['--items', '-5'], /^demo: --items must be a whole number >= 1 \(got "-5"\)/],
    [['--schema', 'Robert"; DROP'], /^demo: --schema must be a lower-case identifier/],
    [['--itmes', '5'], /^demo: Unknown option '--itmes'/],
    [['--items'], /^demo: Option '--items <value>' argument missing/],
  ];
  for (const [args, expected] of cases) {
    const result = runDemo('--schema', fresh, ...args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.output}`);
    assert.equal(result.stdout, '');
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line: ${result.stderr}`);
    assert.match(lines[0] ?? '', expected);
    assert.match(lines[0] ?? '', new RegExp(helpHint));
    assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
    t.diagnostic(`${args.join(' ')}: refused in ${Math.round(result.ms)} ms`);
  }
  assert.equal(await schemaExists(fresh), false, 'nothing was created');

  const help = runDemo('--help', '--schema', fresh);
  assert.equal(help.status, 0, help.output);
  assert.match(help.stdout, /^npm run demo -- \[options\]/);
  assert.match(help.stdout, /--crash-at P/);
  t.diagnostic(`--help answered in ${Math.round(help.ms)} ms`);
  assert.equal(await schemaExists(fresh), false, 'nothing was created');
});

it('says so when a demo already runs on the schema, and --fresh cancels the unfinished run', async () => {
  const first = spawn(process.execPath, [demo, ...shortRun, '--item-ms', '20', '--fresh'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let firstOutput = '';
  const started = new Promise<void>((resolve) => {
    first.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      firstOutput += chunk;
      if (/^progress /m.test(firstOutput)) resolve();
    });
  });
  first.stderr.setEncoding('utf8').on('data', (chunk: string) => (firstOutput += chunk));
  const firstExit = new Promise<number | null>((resolve) => first.once('exit', resolve));
  await started;
  const firstRun = /Starting run (\w+):/.exec(firstOutput)?.[1];
  assert.ok(firstRun, firstOutput);

  const second = runDemo(...shortRun, '--items', '300');
  assert.equal(second.status, 1, second.output);
  assert.match(
    second.stderr,
    new RegExp(
      `^demo: another demo is running on schema "${schema}" of this database \\(the demo process with pid ${first.pid}\\)`,
    ),
  );
  assert.doesNotMatch(second.output, /Starting run|Resuming run/);

  // The first one is unharmed by the second: stop it gracefully, it says where it stopped.
  first.kill('SIGINT');
  assert.equal(await firstExit, 0, firstOutput);
  assert.match(firstOutput, /Stopped\. The checkpoint stands at item [\d,]+ of 2,000/);

  const oldChunks = await sql<{ job_id: string }>(
    `SELECT job_id FROM "${schema}".checkpoint WHERE run_id LIKE $1 ORDER BY run_chunk`,
    [`${firstRun}%`],
  );
  const oldJobs = oldChunks.map((row) => row.job_id);
  assert.equal(oldJobs.length, 2);
  const fresh = runDemo(...shortRun, '--items', '300', '--fresh');
  assert.equal(fresh.status, 0, fresh.output);
  assert.match(
    fresh.output,
    new RegExp(`Cancelled unfinished run ${firstRun} \\(--fresh\\): its 2 jobs are off the queue`),
  );
  assert.match(fresh.output, /Starting run \w+: 300 items/);
  assert.match(fresh.output, /300 decision rows for 300 items: 0 duplicates, 0 missing/);
  const states = await sql<{ state: string }>(
    `SELECT state FROM "${schema}_boss".job WHERE id = ANY($1::uuid[])`,
    [oldJobs],
  );
  assert.deepEqual(
    states.map((row) => row.state),
    ['cancelled', 'cancelled'],
  );
  const chunks = await sql<{ state: string }>(
    `SELECT state FROM "${schema}".checkpoint WHERE run_id LIKE $1`,
    [`${firstRun}%`],
  );
  assert.deepEqual(
    chunks.map((row) => row.state),
    ['cancelled', 'cancelled'],
    'the cancelled run keeps what it committed, and never runs again',
  );
  const [run] = await sql<{ state: string }>(`SELECT state FROM "${schema}".run WHERE id LIKE $1`, [
    `${firstRun}%`,
  ]);
  assert.equal(run?.state, 'cancelled');
});
