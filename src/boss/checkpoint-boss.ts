import { Inject, Logger } from '@nestjs/common';
import { createRequire } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PgBoss } from 'pg-boss';
import { CHECKPOINT_BOSS } from '../checkpoint.constants.js';
import { CheckpointConfigError } from '../checkpoint.errors.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import { bossMessages } from './boss.messages.js';

/** The pg-boss major version this library is written against (its peer range is `^12`). */
export const PG_BOSS_MAJOR = 12;

/** Internal token: the instance and whether the module owns it (starts and stops it). */
export const CHECKPOINT_BOSS_HANDLE = Symbol('checkpoint:boss-handle');
/** Internal token: the application's instance, when the `bossToken` extra names one. */
export const CHECKPOINT_BOSS_SOURCE = Symbol('checkpoint:boss-source');

/** The module's PgBoss and who owns it. */
export interface BossHandle {
  boss: PgBoss | null;
  /** True when the module created it from constructor options: it then starts and stops it. */
  owned: boolean;
}

/**
 * Injects the PgBoss instance CheckpointModule works with (its own or the one it was given).
 * Use it instead of injecting the `PgBoss` class, which belongs to the application or its wrapper.
 *
 * @example
 * ```ts
 * constructor(@InjectCheckpointBoss() private readonly boss: PgBoss) {}
 * ```
 */
export function InjectCheckpointBoss(): PropertyDecorator & ParameterDecorator {
  return Inject(CHECKPOINT_BOSS);
}

/** The version of the pg-boss this library loads, and where it lies (for messages). */
export function loadedBossVersion(): { version: string; path: string } {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('pg-boss/package.json');
  const { version } = require(manifest) as { version: string };
  return { version, path: dirname(manifest) };
}

/**
 * The copies of pg-boss installed under `root`'s node_modules, other than the one at
 * `loadedPath`: where a foreign instance most likely comes from (a package with its own pg-boss,
 * two majors side by side). Looks two levels deep, as npm lays nested copies out.
 */
export function otherBossCopies(root: string, loadedPath: string): string[] {
  const found: string[] = [];
  const look = (dir: string) => {
    const path = join(dir, 'pg-boss');
    if (resolve(path) === resolve(loadedPath)) return;
    try {
      const { version } = JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')) as {
        version?: string;
      };
      found.push(`pg-boss ${version ?? '(no version)'} at ${path}`);
    } catch {
      // no copy here
    }
  };
  const top = join(root, 'node_modules');
  look(top);
  for (const entry of safeList(top)) {
    const packages = entry.startsWith('@')
      ? safeList(join(top, entry)).map((name) => join(top, entry, name))
      : [join(top, entry)];
    for (const dir of packages) look(join(dir, 'node_modules'));
  }
  return found;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => !name.startsWith('.'));
  } catch {
    return [];
  }
}

/**
 * Builds the module's handle: the application's instance (given in `boss` or through the
 * `bossToken` extra), or a PgBoss the module creates from constructor options and starts before
 * anything can inject it. Refuses anything that is not an instance of the PgBoss class this
 * library loads: another major version or a second copy would otherwise fail deep inside pg-boss.
 */
export async function createBoss(
  options: ResolvedCheckpointOptions,
  source: unknown,
): Promise<BossHandle> {
  if (source !== undefined && options.boss !== undefined) {
    throw new CheckpointConfigError(bossMessages.bossTwice());
  }
  const given: unknown = source ?? options.boss;
  if (given === undefined || given === null) return { boss: null, owned: false };
  const loaded = loadedBossVersion();
  if (Number(loaded.version.split('.')[0]) !== PG_BOSS_MAJOR) {
    throw new CheckpointConfigError(
      bossMessages.wrongLoadedVersion(loaded.version, loaded.path, PG_BOSS_MAJOR),
    );
  }
  if (given instanceof PgBoss) return { boss: given, owned: false };
  if (source !== undefined || looksLikeInstance(given)) {
    throw new CheckpointConfigError(
      bossMessages.foreignBoss(
        describeForeign(given),
        loaded.version,
        loaded.path,
        otherBossCopies(process.cwd(), loaded.path),
      ),
    );
  }
  const boss = new PgBoss(given);
  // pg-boss emits 'error' for background failures; without a listener Node would crash.
  const logger = new Logger('Checkpoint');
  boss.on('error', (error: Error) => logger.error(`pg-boss: ${error.message}`));
  await boss.start();
  return { boss, owned: true };
}

const GUARD = Symbol.for('nestjs-checkpoint:stop-guard');

interface StopGuard {
  /** pg-boss's stop, bound to the instance. */
  original: PgBoss['stop'];
  /** An own `stop` property found on the instance (restored when the guard goes). */
  ownStop: unknown;
  drains: Set<() => Promise<void>>;
}

/**
 * Makes `boss.stop()` run `drain` first, whoever calls it: a wrapper or the application stops its
 * pg-boss in its own `onModuleDestroy`, which Nest runs before this library's shutdown hooks, and
 * the graceful sequence (stop fetching, stop attempts at a batch boundary, hand jobs back) must
 * run while pg-boss still works. The instance's `stop` is wrapped once, however many modules
 * guard it; the returned function removes this drain (and the wrapper with the last one).
 */
export function guardStop(boss: PgBoss, drain: () => Promise<void>): () => void {
  const target = boss as PgBoss & { [GUARD]?: StopGuard };
  let guard = target[GUARD];
  if (guard === undefined) {
    const created: StopGuard = {
      original: target.stop.bind(target),
      ownStop: Object.getOwnPropertyDescriptor(target, 'stop')?.value,
      drains: new Set(),
    };
    guard = created;
    Object.defineProperty(target, GUARD, { value: created, configurable: true });
    const logger = new Logger('Checkpoint');
    target.stop = async (...args: Parameters<PgBoss['stop']>) => {
      const outcomes = await Promise.allSettled([...created.drains].map((run) => run()));
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') {
          logger.error(`shutdown before pg-boss stops failed: ${String(outcome.reason)}`);
        }
      }
      return created.original(...args);
    };
  }
  const installed = guard;
  installed.drains.add(drain);
  return () => {
    installed.drains.delete(drain);
    if (installed.drains.size > 0 || target[GUARD] !== installed) return;
    if (installed.ownStop !== undefined) target.stop = installed.ownStop as PgBoss['stop'];
    else delete (target as Partial<PgBoss>).stop;
    delete target[GUARD];
  };
}

/** Constructor options are a plain object of settings; an instance has a class or methods. */
function looksLikeInstance(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  const prototype = Object.getPrototypeOf(value) as object | null;
  if (prototype !== Object.prototype && prototype !== null) return true;
  const record = value as Record<string, unknown>;
  return ['start', 'stop', 'work', 'send'].some((name) => typeof record[name] === 'function');
}

/** Methods pg-boss 12 has that older majors lack: their absence names the mismatch. */
const PG_BOSS_12_METHODS = ['findJobs', 'getQueue', 'updateQueue', 'touch', 'getDb'] as const;

function describeForeign(value: unknown): string {
  if (typeof value !== 'object' || value === null) return `a ${typeof value}`;
  const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'Object';
  const missing = PG_BOSS_12_METHODS.filter(
    (method) => typeof (value as Record<string, unknown>)[method] !== 'function',
  );
  return missing.length > 0
    ? `an instance of ${name} without ${missing.join(', ')} (another major version of pg-boss?)`
    : `an instance of ${name} that is not this PgBoss class (a second copy of pg-boss in node_modules?)`;
}
