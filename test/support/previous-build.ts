// The library as a previous build, for the live-upgrade test: the sources of a fixed older
// commit taken from git, compiled with this checkout's TypeScript and node_modules into a
// temporary directory. Its fixtures run as child processes, beside workers of this build.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child } from './process.js';

/**
 * The last commit before migrations 8 (run counts trigger) and 9 (CREATE INDEX CONCURRENTLY):
 * its schema stops at migration 7. Move it forward to the commit before the next migrations
 * when new ones are appended, so that the test upgrades across the newest ones.
 */
export const PREVIOUS_COMMIT = '78fef032a8d3cbf9bdd4e054fae64c84d4323885';

const repository = fileURLToPath(new URL('../../..', import.meta.url));

/** `git` in this checkout; a clone owned by another user (CI containers) is trusted for reading. */
const git = (args: string[], options: { cwd?: string } = {}) =>
  execFileSync('git', ['-c', `safe.directory=${repository.replace(/\/$/, '')}`, ...args], {
    cwd: options.cwd ?? repository,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });

export interface PreviousBuild {
  commit: string;
  /** Starts a fixture of the previous build (its test/fixtures/<name>.js). */
  start(fixture: string, env: Record<string, string>): Child;
  remove(): Promise<void>;
}

/** Extracts PREVIOUS_COMMIT's src, test fixtures and support, and compiles them. */
export async function buildPrevious(commit = PREVIOUS_COMMIT): Promise<PreviousBuild> {
  try {
    git(['cat-file', '-e', `${commit}^{commit}`]);
  } catch {
    throw new Error(
      `commit ${commit} is not in this clone (a shallow clone?): the live-upgrade test builds the previous version from git history`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'checkpoint-previous-'));
  try {
    const archive = git([
      'archive',
      '--format=tar',
      commit,
      'src',
      'test/fixtures',
      'test/support',
      'tsconfig.json',
      'package.json',
    ]);
    execFileSync('tar', ['-x', '-C', dir], { input: archive });
    await symlink(join(repository, 'node_modules'), join(dir, 'node_modules'), 'dir');
    execFileSync(
      process.execPath,
      [join(repository, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    const output = (error as { stdout?: Buffer }).stdout?.toString() ?? '';
    throw new Error(`building ${commit} failed: ${(error as Error).message}\n${output}`, {
      cause: error,
    });
  }
  return {
    commit,
    start: (fixture, env) =>
      Child.startScript(join(dir, 'build/test/fixtures', `${fixture}.js`), env),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
