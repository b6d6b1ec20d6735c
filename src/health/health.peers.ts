// Imported first by index.ts: ES modules link every static import before any of them runs, so
// checkpoint.health.ts takes @nestjs/terminus through loadPeer(), and this check speaks first.
import { assertPeers } from '../checkpoint.peers.js';

assertPeers('nestjs-checkpoint/health', [
  { name: '@nestjs/terminus', install: '@nestjs/terminus@^12' },
]);
