// watch() hears a completion that commits in the caller's transaction, however late the commit.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { firstValueFrom, filter, timeout } from 'rxjs';
import type { DataSource } from 'typeorm';
import { CheckpointService } from '../../src/index.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, uniqueSchema } from '../support/database.js';

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
