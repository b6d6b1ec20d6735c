// 6. Statements per batch, counted by a TypeORM logger that sees every statement the
// application sends. Each mode runs twice: with no items (the fixed cost of a call: claim and
// complete) and with many batches; the difference divided by the batches is the cost per
// batch, free of edge effects at the start and end of the loop.
import type { Logger as TypeOrmLogger } from 'typeorm';
import { bootApp, type BenchApp } from './app.js';
import type { BenchEnv } from './env.js';
import { Timeline, sleep } from './harness.js';
import { BATCH_SIZE } from './jobs.js';
import { count, target, type Json, type Section } from './report.js';

const BATCHES = 200;
/**
 * Progress notifications are coalesced on a 100 ms timer: each counted call waits this long
 * afterwards, so that the notification it caused is counted with it and not with the next.
 */
const SETTLE_MS = 250;

/** What a statement is, from its text; the first match wins. */
const KINDS: ReadonlyArray<{ kind: string; pattern: RegExp }> = [
  {
    kind: 'checkpoint advance (UPDATE … SET current_index)',
    // In transactional mode the advance sent with the COMMIT is that UPDATE inside a WITH, or
    // its prepared form, EXECUTEd in one message with the COMMIT (see FOLDED).
    pattern:
      /^((WITH advanced AS \()?UPDATE \S+"checkpoint" SET\s+current_index|EXECUTE ckpt_fold_)/,
  },
  { kind: "the batch's own INSERT", pattern: /^INSERT INTO \S+"bench_effect"/ },
  {
    kind: 'START TRANSACTION / COMMIT / ROLLBACK',
    pattern: /^(START TRANSACTION|BEGIN|COMMIT|ROLLBACK)/,
  },
  { kind: 'progress NOTIFY (coalesced, timer)', pattern: /pg_notify/ },
  {
    kind: 'lease session identity (once per session)',
    pattern: /^SELECT pg_backend_pid\(\) AS pid/,
  },
  { kind: 'claim: upsert (INSERT … ON CONFLICT)', pattern: /^INSERT INTO \S+"checkpoint"/ },
  { kind: "complete (UPDATE … SET state = 'completed')", pattern: /SET state = 'completed'/ },
  {
    kind: 'lease renewal (one UPDATE for all leases, every TTL/3)',
    pattern: /^UPDATE \S+"checkpoint" AS c SET owner_pid/,
  },
];
const OTHER = 'anything else';
const ADVANCE = KINDS[0].kind;
const NOTIFY = KINDS[3].kind;
const OWN_WRITES = new Set([KINDS[1].kind, KINDS[2].kind]);

/** The end of a message that carries an advance, its COMMIT and the next START TRANSACTION. */
const FOLDED = '; COMMIT; START TRANSACTION';

/** The statements of a logged text: a folded message counts as its three. */
function statementsOf(text: string): string[] {
  return text.endsWith(FOLDED)
    ? [text.slice(0, -FOLDED.length), 'COMMIT', 'START TRANSACTION']
    : [text];
}

function kindOf(statement: string): string {
  const text = statement.trim();
  return KINDS.find((each) => each.pattern.test(text))?.kind ?? OTHER;
}

/** A TypeORM logger that counts statements by kind. */
class CountingLogger implements TypeOrmLogger {
  private counts = new Map<string, number>();
  readonly unknown = new Set<string>();

  logQuery(query: string): void {
    for (const statement of statementsOf(query)) {
      const kind = kindOf(statement);
      if (kind === OTHER) this.unknown.add(statement.trim().slice(0, 80));
      this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    }
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}

  /** The counts by kind of the statements sent while `action` ran and SETTLE_MS after it. */
  async during(action: () => Promise<unknown>): Promise<Map<string, number>> {
    this.counts = new Map();
    await action();
    await sleep(SETTLE_MS);
    return this.counts;
  }
}

type Mode = 'plain' | 'transactional';

export async function measureStatements(env: BenchEnv): Promise<Section> {
  const logger = new CountingLogger();
  const app = await bootApp({ url: env.url, schema: env.schema, poolSize: 4, logger });
  const items = Array.from({ length: BATCHES * BATCH_SIZE }, (_, i) => i);
  const call = (jobs: BenchApp['jobs'], mode: Mode, key: string, input: readonly number[]) => {
    const payload = { key, items: input, timeline: new Timeline() };
    return mode === 'plain' ? jobs.sum(payload) : jobs.insert(payload);
  };
  const perCall = new Map<Mode, Map<string, number>>();
  const perBatch = new Map<Mode, Map<string, number>>();
  try {
    env.progress(`6. statements: ${BATCHES} batches in each mode`);
    // The process opens its lease session (and LISTENs) once, at its first claim: not counted.
    await logger.during(() => call(app.jobs, 'plain', 'count:warm-up', []));
    for (const mode of ['plain', 'transactional'] as const) {
      const empty = await logger.during(() => call(app.jobs, mode, `count:${mode}:empty`, []));
      const full = await logger.during(() => call(app.jobs, mode, `count:${mode}:full`, items));
      perCall.set(mode, empty);
      const batch = new Map<string, number>();
      for (const kind of new Set([...empty.keys(), ...full.keys()])) {
        batch.set(kind, ((full.get(kind) ?? 0) - (empty.get(kind) ?? 0)) / BATCHES);
      }
      perBatch.set(mode, batch);
    }
  } finally {
    await app.close();
  }

  const of = (map: Map<Mode, Map<string, number>>, mode: Mode, kind: string) =>
    map.get(mode)?.get(kind) ?? 0;
  const kinds = [...KINDS.map((each) => each.kind), OTHER].filter((kind) =>
    (['plain', 'transactional'] as const).some(
      (mode) => of(perCall, mode, kind) !== 0 || of(perBatch, mode, kind) !== 0,
    ),
  );
  const perBatchText = (value: number) => (Number.isInteger(value) ? `${value}` : value.toFixed(3));
  const rows = kinds.map((kind) => [
    kind,
    perBatchText(of(perBatch, 'plain', kind)),
    count(of(perCall, 'plain', kind)),
    perBatchText(of(perBatch, 'transactional', kind)),
    count(of(perCall, 'transactional', kind)),
  ]);
  /** Statements per batch on the batch's own path: neither its own writes nor the timer. */
  const hotPath = (mode: Mode) =>
    [...(perBatch.get(mode)?.entries() ?? [])]
      .filter(([kind]) => kind !== NOTIFY && !OWN_WRITES.has(kind))
      .reduce((sum, [, value]) => sum + value, 0);
  const targets = (['plain', 'transactional'] as const).map((mode) => {
    const advances = of(perBatch, mode, ADVANCE);
    const hot = hotPath(mode);
    return target(
      `${mode}: ${perBatchText(advances)} advance per batch, ${perBatchText(hot)} library ` +
        `statement(s) per batch on the batch's path in all (target: exactly 1, the advance)`,
      advances === 1 && hot === 1,
    );
  });
  const raw: Record<string, Json> = {};
  for (const mode of ['plain', 'transactional'] as const) {
    raw[mode] = {
      batches: BATCHES,
      perCall: Object.fromEntries(perCall.get(mode) ?? []),
      perBatch: Object.fromEntries(perBatch.get(mode) ?? []),
    };
  }
  raw.unclassified = [...logger.unknown];
  return {
    id: '6',
    title: 'Statements per batch',
    about:
      `Every statement the application sends, counted by a TypeORM logger during a decorated ` +
      `call of ${count(BATCHES)} batches of ${BATCH_SIZE} and during one with no items, in each ` +
      'mode. Per batch: the difference divided by the batches; per call: the call with no items ' +
      '(claim and complete). In transactional mode the INSERT is the batch’s own work, and ' +
      'START TRANSACTION / COMMIT are the batch’s transaction, which its insert needs anyway ' +
      '(section 3’s floor has them too): neither counts as the library’s. A batch that another ' +
      'follows sends its advance, its COMMIT and the next batch’s START TRANSACTION in one ' +
      'message; they are counted as the three statements they are.',
    columns: [
      'statement',
      'plain: per batch',
      'plain: per call',
      'transactional: per batch',
      'transactional: per call',
    ],
    rows,
    targets,
    notes: [],
    raw,
  };
}
