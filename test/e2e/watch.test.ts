// watch() hears a completion that commits in the caller's transaction, however late the commit;
// and advances are announced only while some process watches, every other change always.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { firstValueFrom, filter, timeout } from 'rxjs';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { CheckpointService } from '../../src/index.js';
import { createTestApp } from '../support/app.js';
import { DATABASE_URL, dropSchema, sql, uniqueSchema } from '../support/database.js';

const schema = uniqueSchema('watch');
let app: INestApplicationContext;
let service: CheckpointService;

before(async () => {
  app = await createTestApp({ schema });
  service = app.get(CheckpointService);
});

after(async () => {
  await app.close();
  await dropSchema(schema);
});

it('sees a completion whose transaction commits long after the write', async () => {
  const key = 'watch:late-commit';
  const claim = await service.claim(key, { totalItems: 10 });
  await service.advance(key, claim.epoch, { currentIndex: 10, totalItems: 10 });
  const completed = firstValueFrom(
    service.watch(key).pipe(
      filter((progress) => progress.state === 'completed'),
      timeout(60_000),
    ),
  );
  const dataSource = app.get<DataSource>(getDataSourceToken());
  await dataSource.transaction(async (manager) => {
    await service.complete(key, claim.epoch, { done: true }, { manager });
    // Longer than the session's coalescing interval: its notice goes out before this commit.
    await new Promise((resolve) => setTimeout(resolve, 500));
  });
  const progress = await completed;
  assert.equal(progress.processedItems, 10);
});

it('announces advances only while some process watches; claims and ends always', async () => {
  // A bare LISTEN on the progress channel: it hears what workers send, and is no watcher itself.
  const listener = new pg.Client({ connectionString: DATABASE_URL });
  await listener.connect();
  const heard: string[] = [];
  const waiters: Array<() => void> = [];
  listener.on('notification', (message) => {
    heard.push(message.payload ?? '');
    for (const wake of waiters.splice(0)) wake();
  });
  /** Waits until `key` is heard after position `from`; returns the keys heard before it. */
  const heardAfter = async (from: number, key: string): Promise<string[]> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const at = heard.indexOf(key, from);
      if (at >= 0) return heard.slice(from, at);
      if (Date.now() > deadline) assert.fail(`"${key}" was not heard: ${heard.join(', ')}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 1000).unref();
      });
    }
  };
  const watchers = () =>
    sql<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".watcher`).then(([row]) => row.n);
  try {
    await listener.query(`LISTEN "${schema}_checkpoint"`);
    const key = 'watch:gated';
    const claim = await service.claim(key, { totalItems: 100 });
    await heardAfter(0, key);

    // Nobody watches: three advances are not announced. The next claim is, and an advance
    // announced before it went out in the same statement or an earlier one.
    let mark = heard.length;
    for (const currentIndex of [10, 20, 30])
      await service.advance(key, claim.epoch, { currentIndex });
    await service.claim('watch:marker-1');
    assert.deepEqual(await heardAfter(mark, 'watch:marker-1'), []);
    assert.equal(await watchers(), 0);

    // A watcher in this process: its row is written before watch() reads, and advances are heard.
    const watching = service.watch(key).subscribe();
    try {
      await firstValueFrom(service.watch(key).pipe(timeout(60_000)));
      assert.equal(await watchers(), 1);
      mark = heard.length;
      await service.advance(key, claim.epoch, { currentIndex: 40 });
      await heardAfter(mark, key);
    } finally {
      watching.unsubscribe();
    }

    // The last watcher left: its row goes, and advances are quiet again.
    const deadline = Date.now() + 60_000;
    while ((await watchers()) > 0) {
      if (Date.now() > deadline) assert.fail('the watcher row stayed after the last watcher left');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    mark = heard.length;
    await service.advance(key, claim.epoch, { currentIndex: 50 });
    await service.claim('watch:marker-2');
    assert.deepEqual(await heardAfter(mark, 'watch:marker-2'), []);
    // The end of the attempt is a change: heard with nobody watching.
    mark = heard.length;
    await service.complete(key, claim.epoch, { done: true });
    await heardAfter(mark, key);
  } finally {
    await listener.end();
  }
});
