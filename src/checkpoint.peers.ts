import { createRequire } from 'node:module';
import { CheckpointConfigError } from './checkpoint.errors.js';
import { messages } from './checkpoint.messages.js';

/** A package an entry point loads, and the spec that installs it (`class-transformer@^0.5`). */
export interface PeerPackage {
  name: string;
  install: string;
  /** Packages that do the same job instead of `name` (another HTTP platform, say). */
  orAnyOf?: readonly string[];
}

/**
 * A subpath (`nestjs-checkpoint/http`, `nestjs-checkpoint/health`) was imported without a
 * package it loads. Thrown as it loads, before Node's `ERR_MODULE_NOT_FOUND` would be, naming
 * each missing package and the install line that adds them.
 */
export class CheckpointPeerMissingError extends CheckpointConfigError {
  constructor(
    /** The entry point that needs them, e.g. `nestjs-checkpoint/http`. */
    readonly entryPoint: string,
    /** The missing packages' names. */
    readonly packages: readonly string[],
    /** The command that installs them. */
    readonly installCommand: string,
  ) {
    super(messages.peerMissing(entryPoint, packages, installCommand));
  }
}

/** Whether `name` resolves from `from` (a file URL): found but not require()-able counts. */
function installed(name: string, from: string): boolean {
  try {
    createRequire(from).resolve(name);
    return true;
  } catch (error) {
    // An ESM-only package without a `require` condition is there all the same.
    return (error as { code?: unknown }).code !== 'MODULE_NOT_FOUND';
  }
}

/**
 * Throws CheckpointPeerMissingError unless every package resolves from `from` (by default from
 * the library itself, so from the application's node_modules).
 */
export function assertPeers(
  entryPoint: string,
  peers: readonly PeerPackage[],
  from: string = import.meta.url,
): void {
  const missing = peers.filter(
    (peer) => ![peer.name, ...(peer.orAnyOf ?? [])].some((name) => installed(name, from)),
  );
  if (missing.length === 0) return;
  throw new CheckpointPeerMissingError(
    entryPoint,
    missing.map((peer) => peer.name),
    `npm install ${missing.map((peer) => peer.install).join(' ')}`,
  );
}

/**
 * Loads an optional peer by require() (CommonJS, or ESM through Node 22's require(esm)), so
 * that the entry point's peer check runs before any module of it fails to link without it.
 */
export function loadPeer<T>(name: string): T {
  return createRequire(import.meta.url)(name) as T;
}
