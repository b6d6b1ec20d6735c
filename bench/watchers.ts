// 13. Watchers: the dashboard's live stream (`GET api/events` of CheckpointHttpModule) with 1 and
// with 100 clients, side by side. A worker application advances a key continuously (one advance
// every ~10 ms, as a busy job would); in alternating slices the HTTP application serves 1 or 100
// server-sent-event clients, and its statements per second (counted by a TypeORM logger that
// sees every statement it sends) and the worker's advances per second are compared.
import 'reflect-metadata';
import type { CanActivate, INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Logger as TypeOrmLogger } from 'typeorm';
import { CheckpointModule } from '../src/index.js';
import { CheckpointHttpModule } from '../src/http/index.js';
import { bootApp } from './app.js';
import type { BenchEnv } from './env.js';
import { sleep } from './harness.js';
import { count, ratio, target, type Section } from './report.js';

const CLIENTS = 100;
const SLICE_MS = 3000;
const ADVANCE_EVERY_MS = 10;

class CountingLogger implements TypeOrmLogger {
  statements = 0;
  logQuery(): void {
    this.statements += 1;
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

/** The bench's operator: every request is signed in (the guard still runs on each one). */
class Everyone implements CanActivate {
  canActivate(): boolean {
    return true;
  }
}

/** An SSE client that counts the events it receives. */
function openClient(url: string, events: { count: number }): () => void {
  const controller = new AbortController();
  void fetch(url, { signal: controller.signal, headers: { accept: 'text/event-stream' } })
    .then(async (response) => {
      const decoder = new TextDecoder();
      for await (const chunk of response.body as ReadableStream<Uint8Array>) {
        events.count += decoder.decode(chunk, { stream: true }).split('\n\n').length - 1;
      }
    })
    .catch(() => undefined); // aborted at the end of its slice
  return () => controller.abort();
}

export async function measureWatchers(env: BenchEnv): Promise<Section> {
  const logger = new CountingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: env.url,
        schema: env.schema,
        logger,
        extra: { max: 4 },
      }),
      CheckpointModule.forRoot({ schema: env.schema }),
      CheckpointHttpModule.forRoot({ path: 'ops', guard: Everyone }),
    ],
  }).compile();
  const http: INestApplication = moduleRef.createNestApplication({ logger: ['error'] });
  await http.listen(0, '127.0.0.1');
  const url = `${(await http.getUrl()).replace('[::1]', '127.0.0.1')}/ops/api/events`;
  const worker = await bootApp({ url: env.url, schema: env.schema, poolSize: 3 });
  const key = 'bench:watchers';
  const claim = await worker.service.claim(key, { totalItems: 1_000_000_000 });
  let advances = 0;
  let running = true;
  const advancing = (async () => {
    while (running) {
      advances += 1;
      await worker.service.advance(key, claim.epoch, { currentIndex: advances });
      await sleep(ADVANCE_EVERY_MS);
    }
  })();

  const slices = env.scaled(6, 2);
  const figures: Record<
    '1' | '100',
    { statements: number; advances: number; events: number; seconds: number }
  > = {
    '1': { statements: 0, advances: 0, events: 0, seconds: 0 },
    '100': { statements: 0, advances: 0, events: 0, seconds: 0 },
  };
  try {
    for (let slice = 0; slice < slices * 2; slice++) {
      const clients = slice % 2 === 0 ? 1 : CLIENTS;
      const events = { count: 0 };
      const closers = Array.from({ length: clients }, () => openClient(url, events));
      await sleep(500); // the clients connect; the counted window starts after
      const start = {
        statements: logger.statements,
        advances,
        events: events.count,
        at: performance.now(),
      };
      await sleep(SLICE_MS);
      const into = figures[clients === 1 ? '1' : '100'];
      into.statements += logger.statements - start.statements;
      into.advances += advances - start.advances;
      into.events += events.count - start.events;
      into.seconds += (performance.now() - start.at) / 1000;
      closers.forEach((close) => close());
      env.progress(`watchers: slice ${slice + 1}/${slices * 2} (${clients} clients)`);
    }
  } finally {
    running = false;
    await advancing;
    await worker.service.release(key, claim.epoch);
    await worker.close();
    await http.close();
  }
  const perSecond = (value: number, seconds: number) => value / seconds;
  const one = figures['1'];
  const many = figures['100'];
  const statementsRatio =
    perSecond(many.statements, many.seconds) / perSecond(one.statements, one.seconds);
  const workerRatio = perSecond(many.advances, many.seconds) / perSecond(one.advances, one.seconds);
  const row = (label: string, f: typeof one, clients: number) => [
    label,
    count(perSecond(f.statements, f.seconds)),
    count(perSecond(f.advances, f.seconds)),
    count(perSecond(f.events, f.seconds) / clients),
  ];
  return {
    id: '13',
    title: 'Watchers: the live stream with 1 and 100 clients',
    about:
      `A worker advances one key every ~${ADVANCE_EVERY_MS} ms; the HTTP application serves ` +
      `\`GET api/events\` to 1 or ${CLIENTS} clients in ${slices} alternating slices of ` +
      `${SLICE_MS / 1000} s each. Statements are the HTTP application's, counted by its TypeORM logger.`,
    columns: ['clients', 'HTTP app statements/s', 'worker advances/s', 'events/s per client'],
    rows: [row('1', one, 1), row(String(CLIENTS), many, CLIENTS)],
    targets: [
      target(
        `statements/s with ${CLIENTS} clients ÷ with 1 = ${ratio(statementsRatio)} (≤ 1.2x)`,
        statementsRatio <= 1.2,
      ),
    ],
    notes: [
      'One live feed per process: the changes are read once per 150 ms window and the result is ' +
        'shared (rxjs share, reference-counted) by every stream, so the statements do not grow ' +
        'with the clients.',
      `The worker's advances/s with ${CLIENTS} clients ÷ with 1 = ${ratio(workerRatio)}: the ` +
        'worker, the HTTP server and the 100 clients share one Node process here (the clients ' +
        'parse every event), so this is CPU of the one event loop, not database work.',
    ],
    raw: { one, many, statementsRatio, workerRatio },
  };
}
