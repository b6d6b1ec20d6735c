// One worker process of bench section 15 (many processes): a Nest application with a small
// TypeORM pool (POOL connections, the lease session one of them), pg-boss and a decorated job
// that works the `fleet` queue KEYS jobs at a time, each a long run of small batches that save
// nothing but their checkpoint. Beside it, a raw pg pool of POOL - 1 connections (what the
// library's statements get) advances KEYS keys of its own with the library's advance statement.
//
// It reads commands on stdin, one a line, and answers on stdout:
//   drive <library|raw> <warmupMs> <windowMs>  the other way waits; answers `saves <in window>
//                                              <in slice> <CPU µs> <notify statements>`
//   hold | free                                this process's loops stop at their next save
//                                              (answers `held`) or run freely again (`freed`)
//   counts                                     answers `counts <renewals> <reaper looks> <asks>`,
//                                              the statements sent so far (TypeORM's logger)
// Between drives the jobs run freely.
import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import pg from 'pg';
import type { Job } from 'pg-boss';
import { createInterface } from 'node:readline';
import type { Logger as TypeOrmLogger } from 'typeorm';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  Checkpointed,
  type CheckpointContext,
  type ClaimedCheckpoint,
} from '../src/index.js';
import { advanceQuery, asLibrarySends } from './advance.js';
import { bootApp } from './app.js';
import { FLEET_QUEUE } from './jobs.js';

const url = process.env.DATABASE_URL as string;
const schema = process.env.SCHEMA as string;
const index = Number(process.env.PROCESS ?? 0);
const keys = Number(process.env.KEYS ?? 8);
const pool = Number(process.env.POOL ?? 2);
const batchSize = Number(process.env.BATCH_SIZE ?? 10);
/** Items of every job: the jobs outlast the section. */
const ITEMS = Array.from({ length: 2_000_000 }, (_, i) => i);

/** Whose turn it is: the other way's loops wait at their next save ('none': both wait). */
let turn: 'library' | 'raw' | 'none' = 'library';
const waiting: Array<() => void> = [];
const mayGo = async (way: 'library' | 'raw') => {
  while (turn !== way) await new Promise<void>((resolve) => waiting.push(resolve));
};
const setTurn = (next: typeof turn) => {
  turn = next;
  for (const resume of waiting.splice(0)) resume();
};

/** Saves counted by each way: ends of saves, as timestamps since the window opened. */
const saved = { library: [] as number[], raw: [] as number[] };

/** Counts the library's statements by kind, as they are sent. */
class CountingLogger implements TypeOrmLogger {
  renewals = 0;
  looks = 0;
  /** The reaper's question whether it leads (every process, every tick). */
  asks = 0;
  /** The session's progress announcements (one statement for all keys changed meanwhile). */
  notifies = 0;
  logQuery(query: string): void {
    const text = query.trim();
    if (/^UPDATE \S+"checkpoint" AS c SET owner_pid/.test(text)) this.renewals += 1;
    else if (/^WITH look AS MATERIALIZED/.test(text)) this.looks += 1;
    else if (/^UPDATE \S+"reaper" AS r/.test(text)) this.asks += 1;
    else if (text.includes('pg_notify($1, k)')) this.notifies += 1;
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

@Injectable()
export class FleetJob {
  @Checkpointed({
    queue: FLEET_QUEUE,
    batchSize,
    localConcurrency: keys,
    // pg-boss's default poll: each of the KEYS workers of a process polls when idle.
    pollingIntervalSeconds: 2,
    retryLimit: 0,
    expireInSeconds: 3600,
  })
  async work(
    _job: Job<Record<string, never>>,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<void> {
    // A batch's body starts once the previous batch's advance has committed: each start after
    // the first marks a save.
    let first = true;
    for await (const batch of ctx.batches(ITEMS)) {
      if (!first) saved.library.push(performance.now());
      first = false;
      void batch;
      await mayGo('library');
    }
  }
}

const logger = new CountingLogger();
const app = await bootApp({
  url,
  schema,
  poolSize: pool,
  logger,
  applicationName: 'bench_fleet',
  providers: [FleetJob],
  checkpoint: {
    leaseTtlMs: Number(process.env.LEASE_TTL_MS ?? 30_000),
    boss: {
      connectionString: url,
      schema: `${schema}_boss`,
      max: 2,
      supervise: false,
      schedule: false,
      migrate: false,
      application_name: 'bench_fleet_boss',
    },
  },
});
const raw = new pg.Pool({
  connectionString: url,
  max: Math.max(1, pool - 1),
  application_name: 'bench_fleet_raw',
});
const claims: ClaimedCheckpoint[] = [];
for (let k = 0; k < keys; k++) claims.push(await app.service.claim(`fleet-raw:${index}:${k}`));
let rawSaves = 0;
for (const claim of claims) {
  void (async () => {
    for (;;) {
      await mayGo('raw');
      await raw.query(asLibrarySends(advanceQuery(schema, claim, ++rawSaves)));
      saved.raw.push(performance.now());
    }
  })();
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line: string) => process.stdout.write(`${line}\n`);
say('ready');

for await (const line of createInterface({ input: process.stdin })) {
  const [command, ...args] = line.trim().split(' ');
  if (command === 'drive') {
    const way = args[0] === 'raw' ? 'raw' : 'library';
    const [warmupMs, windowMs] = args.slice(1).map(Number);
    saved.library = [];
    saved.raw = [];
    setTurn(way);
    const start = performance.now() + warmupMs;
    const end = start + windowMs;
    const cpuFrom = process.cpuUsage();
    const notifiesFrom = logger.notifies;
    await sleep(warmupMs + windowMs + 20);
    const cpu = process.cpuUsage(cpuFrom);
    const saves = saved[way].filter((at) => at >= start && at <= end).length;
    const all = saved[way].length;
    setTurn('library');
    // The saves in the window; the process's CPU time and announcements over the whole slice.
    say(`saves ${saves} ${all} ${cpu.user + cpu.system} ${logger.notifies - notifiesFrom}`);
  } else if (command === 'hold' || command === 'free') {
    // Held: this process saves nothing while the bench drives others (the ceiling's sweep).
    setTurn(command === 'hold' ? 'none' : 'library');
    say(command === 'hold' ? 'held' : 'freed');
  } else if (command === 'counts') {
    say(`counts ${logger.renewals} ${logger.looks} ${logger.asks}`);
  }
}
// The bench has gone (stdin closed): nothing to hand back, the schema goes with it.
process.exit(0);
