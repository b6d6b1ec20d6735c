// Error messages of runs, each saying what to fix.
import { MAX_RUN_ID_LENGTH } from './runs.constants.js';

const describe = (value: unknown): string => {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || value === undefined || value === null) return String(value);
  return typeof value;
};

export const runMessages = {
  badId: (id: unknown) =>
    `runs.start: id must be a non-empty string of at most ${MAX_RUN_ID_LENGTH} characters (got ${describe(id)})`,
  badQueue: (queue: unknown) => `runs: queue must be a non-empty string (got ${describe(queue)})`,
  emptyItems: (items: unknown) =>
    `runs.start: items must be a non-empty array (got ${Array.isArray(items) ? 'an empty array' : describe(items)})`,
  badChunkSize: (value: unknown) =>
    `runs.start: chunkSize must be 'auto' or a whole number >= 1 (got ${describe(value)})`,
  badCount: (field: string, value: unknown) =>
    `runs: ${field} must be a whole number >= 1 (got ${describe(value)})`,
  unknownQueue: (queue: string) =>
    `runs: queue "${queue}" has no worker registered in any process and was never created in pg-boss; ` +
    `register a @Checkpointed({ queue: '${queue}' }) method (or create the queue) before starting runs on it`,
  bossMissing: () =>
    'runs need pg-boss: give CheckpointModule the `boss` option (connection options or a PgBoss instance)',
  cancelNeedsBoss: (id: string, jobs: number) =>
    `run "${id}" has ${jobs} unfinished chunk job(s) in pg-boss, and this CheckpointModule has no pg-boss to cancel them: give it the \`boss\` option; nothing was cancelled`,
  notFound: (id: string) => `run "${id}" does not exist`,
  conflict: (id: string, differences: string[]) =>
    `runs.start: run "${id}" exists with other ${differences.join(', ')}; ` +
    'start it with the same queue, items and chunkSize to get it back, or give the new input another id',
  badFilter: (field: string, value: unknown) =>
    `runs.list: ${field} is invalid (got ${describe(value)})`,
};
