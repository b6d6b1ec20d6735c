// The subpaths' peer check: a package that does not resolve from where the library is installed
// is named, with the install line that adds it (test/e2e/install.test.ts does it for real, with
// the packages taken out of a fresh application).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { CheckpointConfigError, CheckpointPeerMissingError } from '../../src/index.js';
import { assertPeers } from '../../src/checkpoint.peers.js';

const PEERS = [
  { name: 'class-transformer', install: 'class-transformer@^0.5' },
  {
    name: '@nestjs/platform-express',
    install: '@nestjs/platform-express@^12',
    orAnyOf: ['@nestjs/platform-fastify'],
  },
];

describe('assertPeers', () => {
  it('passes where the packages are installed', () => {
    assert.doesNotThrow(() => assertPeers('nestjs-checkpoint/http', PEERS));
  });

  it('names every missing package and the line that installs them', () => {
    const empty = mkdtempSync(join(tmpdir(), 'checkpoint-no-peers-'));
    try {
      const from = pathToFileURL(join(empty, 'index.js')).href;
      assert.throws(
        () => assertPeers('nestjs-checkpoint/http', PEERS, from),
        (error: unknown) => {
          assert.ok(error instanceof CheckpointPeerMissingError);
          assert.ok(error instanceof CheckpointConfigError);
          assert.deepEqual(error.packages, ['class-transformer', '@nestjs/platform-express']);
          assert.equal(
            error.message,
            'nestjs-checkpoint/http needs class-transformer and @nestjs/platform-express, which are not installed: npm install class-transformer@^0.5 @nestjs/platform-express@^12',
          );
          return true;
        },
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('takes another package that does the same job', () => {
    // The first name resolves nowhere; rxjs, named as doing the same job, resolves here.
    assert.doesNotThrow(() =>
      assertPeers('x', [{ name: 'not-a-package-here', install: 'x', orAnyOf: ['rxjs'] }]),
    );
  });
});
