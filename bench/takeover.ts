// 14. Takeover after a SIGKILL: how long a dead worker's pg-boss job waits.
//
// Two worker processes (the pg-boss worker of the e2e tests, test/fixtures/queue-worker.ts, on
// pg-boss's default 2 s poll) and one job at a time: once the job's owner has committed two
// batches it is SIGKILLed, and the bench times, from the kill, the reaper's hand-back (its log
// line in a surviving worker), the claim by the other worker (its `start` line) and that worker's
// first committed batch (its second `batch` line: the loop asks for the next batch only after
// the first one's commit). The hand-back is read from the checkpoint row (no longer running:
// the reaper abandons it just before it fails the job in pg-boss), every 5 ms. The killed worker is replaced before the next round. The figures are
// wall-clock times across processes, read from their output as it arrives.
import { PgBoss } from 'pg-boss';
import { createJobEffectTable, QUEUE } from '../test/fixtures/queue-job.js';
import { Child } from '../test/support/process.js';
import type { BenchEnv } from './env.js';
import { summarize } from './harness.js';
import { ms, summaryJson, target, type Section } from './report.js';

const KILLS = 20;
/** How often the bench reads the job's checkpoint row while it waits for the hand-back. */
const LOOK_EVERY_MS = 5;
const FIRST_BATCH_MAX_MS = 1000;
/** pg-boss's default poll, which a worker waits out when nothing wakes it. */
const POLLING_SECONDS = 2;

export async function measureTakeover(env: BenchEnv): Promise<Section> {
  const schema = `${env.schema}_takeover`;
  await env.raw.query(`CREATE SCHEMA "${schema}"`);
  await env.raw.query(createJobEffectTable(schema));
  const boss = new PgBoss({
    connectionString: env.url,
    schema: `${schema}_boss`,
    supervise: false,
    max: 2,
  });
  boss.on('error', () => undefined);
  await boss.start();
  const start = () =>
    Child.start('queue-worker', {
      SCHEMA: schema,
      JOB_EVENTS: '1',
      DATABASE_URL: env.url,
      POLLING_SECONDS: String(POLLING_SECONDS),
    });
  const workers = [start(), start()];
  const handBack: number[] = [];
  const claim: number[] = [];
  const firstBatch: number[] = [];
  const kills = env.scaled(KILLS, 3);
  try {
    await Promise.all(workers.map((w) => w.waitFor((l) => l.startsWith('ready'), 60_000)));
    for (let round = 0; round < kills; round++) {
      env.progress(`14. takeover: kill ${round + 1} of ${kills}`);
      const id = await boss.send(QUEUE, { count: 1000, batchDelayMs: 10 });
      if (id === null) throw new Error('bench: pg-boss did not take the job');
      const owner = await Promise.race(
        workers.map((w) => w.waitFor((l) => l === `batch ${id} 100`, 60_000).then(() => w)),
      );
      const other = workers.find((w) => w !== owner) as Child;
      const killedAt = performance.now();
      const since = () => performance.now() - killedAt;
      const claimed = other.waitFor((l) => l.startsWith(`start ${id} `), 30_000).then(since);
      let batches = 0;
      const committed = other
        .waitFor((l) => l.startsWith(`batch ${id} `) && ++batches === 2, 30_000)
        .then(since);
      owner.process.kill('SIGKILL');
      handBack.push(await abandoned(env, schema, `${QUEUE}:${id}`, since));
      claim.push(await claimed);
      firstBatch.push(await committed);
      await other.waitFor((l) => l === `done ${id}`, 60_000);
      const replacement = start();
      await replacement.waitFor((l) => l.startsWith('ready'), 60_000);
      workers[workers.indexOf(owner)] = replacement;
    }
  } finally {
    await Promise.all(workers.map((w) => w.kill('SIGKILL')));
    await boss.stop({ graceful: false });
    await env.raw.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await env.raw.query(`DROP SCHEMA IF EXISTS "${schema}_boss" CASCADE`);
  }
  const rows = [
    ['job handed back to pg-boss (reaper)', handBack],
    ['job claimed by the other worker', claim],
    ["the other worker's first batch committed", firstBatch],
  ] as const;
  const summaries = rows.map(([, samples]) => summarize(samples));
  const first = summaries[2];
  const p95 = (samples: readonly number[]) => {
    const sorted = [...samples].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)];
  };
  return {
    id: '14',
    title: 'Takeover after a SIGKILL',
    about:
      `Two pg-boss worker processes (pg-boss's default ${POLLING_SECONDS} s poll), a direct ` +
      `connection; ${kills} times, the owner of a job is SIGKILLed after two committed batches. ` +
      'Times from the kill (wall clock, read from the processes’ output as it arrives): the ' +
      'reaper hands the job back, the other worker claims it, and commits its first batch.',
    columns: ['from the kill to', 'kills', 'p50', 'p95', 'max'],
    rows: rows.map(([label, samples], index) => [
      label,
      String(samples.length),
      ms(summaries[index].p50),
      ms(p95(samples)),
      ms(summaries[index].max),
    ]),
    targets: [
      target(
        `the next worker's first batch within ${FIRST_BATCH_MAX_MS} ms of the kill: p50 ` +
          `${ms(first.p50)}, p95 ${ms(p95(firstBatch))}, max ${ms(first.max)} (target p95 ≤ ` +
          `${ms(FIRST_BATCH_MAX_MS)})`,
        p95(firstBatch) <= FIRST_BATCH_MAX_MS,
      ),
    ],
    notes: [],
    raw: Object.fromEntries(
      rows.map(([label, samples]) => [label, summaryJson(summarize(samples), samples)]),
    ),
  };
}

/** The time (by `since`) at which the reaper abandoned `key`: its row no longer running. */
async function abandoned(
  env: BenchEnv,
  schema: string,
  key: string,
  since: () => number,
): Promise<number> {
  for (;;) {
    const { rows } = await env.raw.query<{ state: string }>(
      `SELECT state FROM "${schema}".checkpoint WHERE key = $1`,
      [key],
    );
    if (rows[0]?.state !== 'running') return since();
    if (since() > 30_000) throw new Error(`bench: ${key} was not handed back within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, LOOK_EVERY_MS));
  }
}
