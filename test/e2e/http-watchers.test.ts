// One live feed per process: 100 server-sent-event clients cost the database what one does.
// Another application (its own DataSource, as a worker would be) advances a key in rounds; each
// round waits until every client has seen it. The HTTP application's statements, counted by a
// TypeORM logger that sees every statement it sends, are compared for 1 and 100 clients over the
// same rounds, on the all-keys stream (the page's) and on one key's stream.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import type { Logger as TypeOrmLogger } from 'typeorm';
import { CheckpointService } from '../../src/index.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, uniqueSchema } from '../support/database.js';
import {
  createHttpApp,
  READER,
  SessionGuard,
  SseClient,
  type HttpTestApp,
} from '../support/http.js';

const schema = uniqueSchema('http_watchers');
const ROUNDS = 12;

/** Counts the statements of the application it is given to. */
class StatementCounter implements TypeOrmLogger {
  count = 0;
  logQuery(): void {
    this.count++;
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

const counter = new StatementCounter();
let http: HttpTestApp;
let writer: INestApplicationContext;
let service: CheckpointService;

before(async () => {
  writer = await createTestApp({ schema, poolSize: 3 });
  service = writer.get(CheckpointService);
  http = await createHttpApp({ schema, guard: SessionGuard, statements: counter, pool: 4 });
});

after(async () => {
  await http.app.close();
  await writer.close();
  await dropSchema(schema);
});

/**
 * Opens `clients` streams at `path`, advances `key` until every client sees it (warm-up), then
 * counts the HTTP application's statements over ROUNDS more advances, each one seen by all.
 */
async function measure(key: string, path: string, clients: number): Promise<number> {
  const claim = await service.claim(key, { totalItems: 1_000_000 });
  const url = `${http.url}/ops/checkpoints/api/${path}`;
  const streams = Array.from({ length: clients }, () => new SseClient(url, READER, key));
  let at = 0;
  const round = async () => {
    at += 10;
    await service.advance(key, claim.epoch, { currentIndex: at });
    await Promise.all(streams.map((stream) => stream.reached(at)));
  };
  try {
    // Warm-up: a client that connected after a change waits for the next one.
    while (streams.some((stream) => stream.seen < 0)) {
      at += 10;
      await service.advance(key, claim.epoch, { currentIndex: at });
      await Promise.race([
        Promise.all(streams.map((stream) => stream.reached(at))),
        new Promise((resolve) => setTimeout(resolve, 300)),
      ]);
    }
    await round();
    const before = counter.count;
    for (let i = 0; i < ROUNDS; i++) await round();
    return counter.count - before;
  } finally {
    await Promise.all(streams.map((stream) => stream.close()));
    await service.release(key, claim.epoch);
  }
}

describe('live streams share one feed per process', () => {
  for (const [name, path] of [
    ['the all-keys stream', () => 'events'],
    ["one key's stream", (key: string) => `keys/${encodeURIComponent(key)}/events`],
  ] as const) {
    it(`${name}: 100 clients send at most 1.2x the statements of one`, async (t: TestContext) => {
      const one = await measure(`${name}/1`, path(`${name}/1`), 1);
      const many = await measure(`${name}/100`, path(`${name}/100`), 100);
      t.diagnostic(
        `${ROUNDS} changes: 1 client ${one} statements, 100 clients ${many} (${(many / one).toFixed(2)}x)`,
      );
      assert.ok(one > 0, 'the feed read');
      assert.ok(many <= one * 1.2, `${many} statements for 100 clients, ${one} for one`);
    });
  }
});
