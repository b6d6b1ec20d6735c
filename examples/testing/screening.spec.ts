import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Test, type TestingModule } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { CheckpointRuns } from 'nestjs-checkpoint';
import { CheckpointTesting, CheckpointTestingModule } from 'nestjs-checkpoint/testing';
import { Decision } from '../screening.entities.js';
import { SCREENING_QUEUE, ScreeningService } from '../screening.service.js';

let app: TestingModule;

before(async () => {
  app = await Test.createTestingModule({
    imports: [CheckpointTestingModule.forRoot({ entities: [Decision] })],
    providers: [ScreeningService],
  }).compile();
  await app.init();
});

after(() => app.close());

it('screens the same way when killed five times along the way', async () => {
  const runs = app.get(CheckpointRuns);
  const items = Array.from({ length: 500 }, (_, i) => i);
  const { result } = await app.get(CheckpointTesting).assertResumable(
    async () => {
      const run = await runs.start(SCREENING_QUEUE, {
        id: '3f1c9a52-8a0e-4c6b-9d7e-2b5f0c1d4e6a',
        items,
        directThreshold: items.length, // worked inline, in this call
      });
      return run.result;
    },
    {
      interruptions: 5,
      snapshot: () => app.get(DataSource).query('SELECT item, verdict FROM decision'),
    },
  );
  assert.deepEqual(result, { screened: 500 });
});

it('works a queued run to its end', async () => {
  const runs = app.get(CheckpointRuns);
  const items = Array.from({ length: 300 }, (_, i) => i);
  const id = '7d0e5b1a-2c4f-4e8a-9b6d-1f3a5c7e9b2d';
  await runs.start(SCREENING_QUEUE, { id, items, chunkSize: 100, directThreshold: 0 });
  await app.get(CheckpointTesting).drain(SCREENING_QUEUE); // every chunk, no sleeps
  assert.equal((await runs.get(id))?.state, 'completed');
});
