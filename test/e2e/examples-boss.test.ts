// The three ways to run pg-boss work (examples/pg-boss): each example application boots, works
// a job to completion and shuts down cleanly.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { DynamicModule } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { PgBoss } from 'pg-boss';
import { CHECKPOINT_BOSS, CheckpointService } from '../../src/index.js';
import {
  BorrowedInstanceApp,
  BorrowedInstanceScreening,
} from '../../examples/pg-boss/borrowed-instance.js';
import { HandWrittenApp } from '../../examples/pg-boss/hand-written.js';
import { OwnInstanceApp, OwnInstanceScreening } from '../../examples/pg-boss/own-instance.js';
import { DATABASE_URL, dropSchema, uniqueSchema } from '../support/database.js';

const schemas: string[] = [];
after(async () => {
  for (const schema of schemas) {
    await dropSchema(schema);
    await dropSchema(`${schema}_boss`);
  }
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function runExample(
  register: (url: string, schema: string) => DynamicModule,
  send: (app: Awaited<ReturnType<typeof boot>>, ids: number[]) => Promise<string | null>,
  queue: string,
) {
  const schema = uniqueSchema('example');
  schemas.push(schema);
  const app = await boot(register(DATABASE_URL, schema));
  try {
    const ids = Array.from({ length: 120 }, (_, i) => i);
    const id = await send(app, ids);
    assert.ok(id);
    const service = app.get(CheckpointService, { strict: false });
    const deadline = Date.now() + 30_000;
    let progress = await service.getProgress(`${queue}:${id}`);
    while (progress?.state !== 'completed') {
      assert.ok(Date.now() < deadline, `job ${id} did not complete: ${JSON.stringify(progress)}`);
      await sleep(100);
      progress = await service.getProgress(`${queue}:${id}`);
    }
    assert.equal(progress.processedItems, 120);
    assert.deepEqual((await service.find(`${queue}:${id}`))?.result, { screened: 120 });
  } finally {
    await app.close();
  }
}

async function boot(module: DynamicModule) {
  const app = await Test.createTestingModule({ imports: [module] }).compile();
  app.useLogger(['error']);
  await app.init();
  return app;
}

describe('examples/pg-boss', () => {
  it("the library's own instance", async () => {
    await runExample(
      (url, schema) => OwnInstanceApp.register(url, schema),
      (app, ids) => app.get(OwnInstanceScreening, { strict: false }).start(ids),
      'screening-own',
    );
  });

  it("a borrowed instance, owned and stopped by the application's module", async () => {
    await runExample(
      (url, schema) => BorrowedInstanceApp.register(url, schema),
      (app, ids) => {
        assert.equal(
          app.get(CHECKPOINT_BOSS, { strict: false }),
          app.get(PgBoss, { strict: false }),
        );
        return app.get(BorrowedInstanceScreening, { strict: false }).start(ids);
      },
      'screening-borrowed',
    );
  });

  it('a hand-written handler', async () => {
    await runExample(
      (url, schema) => HandWrittenApp.register(url, schema),
      (app, ids) => app.get(PgBoss, { strict: false }).send('screening-hand', { ids }),
      'screening-hand',
    );
  });
});
