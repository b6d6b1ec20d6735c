// Messages of the pg-boss integration, each saying what to fix.

export const bossMessages = {
  foreignBoss: (got: string, version: string, path: string, others: string[]) =>
    `CheckpointModule option boss must be pg-boss constructor options or an instance of the PgBoss ` +
    `class this library loads (pg-boss ${version}, from ${path}); got ${got}. ` +
    (others.length > 0
      ? `Other copies found: ${others.join(', ')}. `
      : `No other copy of pg-boss found under node_modules: the instance comes from elsewhere. `) +
    `Install one copy of ` +
    `pg-boss ^12 (\`npm ls pg-boss\` lists them) and pass an instance created from it.`,
  wrongLoadedVersion: (version: string, path: string, major: number) =>
    `nestjs-checkpoint needs pg-boss ^${major}.0.0, but loads pg-boss ${version} from ${path}; ` +
    `install pg-boss@^${major}.`,
  bossTwice: () =>
    `CheckpointModule was given both the boss option and the bossToken extra; give one of them`,
  queueOptionsApplied: (queue: string, changes: string[]) =>
    `queue "${queue}" already existed with other options; applied with updateQueue(): ${changes.join(', ')}`,
  queueOptionsNotApplied: (queue: string, changes: string[], reason: string) =>
    `queue "${queue}" already exists with other options and updateQueue() refused them ` +
    `(${reason}): ${changes.join(', ')}. The worker runs with the queue's options; ` +
    `change them with updateQueue() or recreate the queue.`,
} as const;
