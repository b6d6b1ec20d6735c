// The checkpoint row's rules (migration 15): a write that changes what a row means (an insert,
// a new state, an operator's request, skipped items) is checked whole and refused with SQLSTATE
// 23514 under the rule's name, whoever sends it; an advance is checked by the library before it
// is sent, so the table carries no CHECK constraint for PostgreSQL to evaluate on every update.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { INestApplicationContext } from '@nestjs/common';
import { CheckpointService, CheckpointValidationError } from '../../src/index.js';
import { createTestApp } from '../support/app.js';
import { dropSchema, sql, uniqueSchema } from '../support/database.js';

const schema = uniqueSchema('rules');
const table = `"${schema}"."checkpoint"`;
let app: INestApplicationContext;
let service: CheckpointService;

before(async () => {
  app = await createTestApp({ schema, poolSize: 2 });
  service = app.get(CheckpointService);
});

after(async () => {
  await app?.close();
  await dropSchema(schema);
});

/** The refusal a raw statement meets: SQLSTATE and the rule's name. */
async function refusal(text: string): Promise<{ code: string; constraint: string }> {
  try {
    await sql(text);
  } catch (error) {
    const { code, constraint, message } = error as {
      code: string;
      constraint: string;
      message: string;
    };
    assert.ok(message.length > 0);
    return { code, constraint };
  }
  throw new Error(`not refused: ${text}`);
}

describe("the checkpoint row's rules", () => {
  it('refuses a bad row on insert and on a change of meaning, naming the rule', async () => {
    const claim = await service.claim('rules:a');
    await service.advance('rules:a', claim.epoch, { currentIndex: 5 });
    const cases: [string, string][] = [
      [`INSERT INTO ${table} (key, state) VALUES ('', 'running')`, 'checkpoint_key_check'],
      [
        `INSERT INTO ${table} (key, state) VALUES ('rules:b', 'sleeping')`,
        'checkpoint_state_check',
      ],
      [
        `INSERT INTO ${table} (key, state, current_index) VALUES ('rules:c', 'running', -1)`,
        'checkpoint_current_index_check',
      ],
      [`UPDATE ${table} SET state = 'done' WHERE key = 'rules:a'`, 'checkpoint_state_check'],
      [`UPDATE ${table} SET control = 'stop' WHERE key = 'rules:a'`, 'checkpoint_control_check'],
      [
        `UPDATE ${table} SET skipped_items = -2 WHERE key = 'rules:a'`,
        'checkpoint_skipped_items_check',
      ],
      [
        `UPDATE ${table} SET state = 'released', total_batches = -1 WHERE key = 'rules:a'`,
        'checkpoint_total_batches_check',
      ],
    ];
    for (const [text, constraint] of cases) {
      assert.deepEqual(await refusal(text), { code: '23514', constraint }, text);
    }
    const [row] = await sql<{ state: string; current_index: string; control: string | null }>(
      `SELECT state, current_index, control FROM ${table} WHERE key = 'rules:a'`,
    );
    assert.deepEqual(row, { state: 'running', current_index: '5', control: null });
    await service.complete('rules:a', claim.epoch, null);
  });

  it('an advance is checked by the library, and the table has no CHECK to evaluate', async () => {
    const claim = await service.claim('rules:d');
    await assert.rejects(
      service.advance('rules:d', claim.epoch, { currentIndex: -1 }),
      CheckpointValidationError,
    );
    await assert.rejects(
      service.advance('rules:d', claim.epoch, { currentIndex: 3, totalItems: -4 }),
      CheckpointValidationError,
    );
    const [found] = await sql<{ current_index: string }>(
      `SELECT current_index FROM ${table} WHERE key = 'rules:d'`,
    );
    assert.equal(found.current_index, '0', 'nothing of a refused advance was written');
    const checks = await sql<{ conname: string }>(
      `SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'`,
      [table],
    );
    assert.deepEqual(checks, []);
    await service.release('rules:d', claim.epoch);
  });
});
