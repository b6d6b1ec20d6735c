// Imported first by index.ts: ES modules link every static import before any of them runs, so
// the modules that load these packages take them through loadPeer(), and this check speaks first.
import { assertPeers } from '../checkpoint.peers.js';

assertPeers('nestjs-checkpoint/http', [
  { name: 'class-transformer', install: 'class-transformer@^0.5' },
  {
    name: '@nestjs/platform-express',
    install: '@nestjs/platform-express@^12',
    orAnyOf: ['@nestjs/platform-fastify'],
  },
]);
