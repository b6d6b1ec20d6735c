import type { Logger } from '@nestjs/common';
import type { PgBoss, QueueOptions } from 'pg-boss';
import { bossMessages } from './boss.messages.js';

/**
 * The reaper hands back a dead worker's job within a second or so, but only once its
 * checkpoint row is running. A worker killed between pg-boss's fetch and the claim leaves no such row; the
 * heartbeat makes pg-boss retry that job after this long instead of after its expiry.
 */
const DEFAULT_HEARTBEAT_SECONDS = 30;

/**
 * Creates the queue with the decorator's options, or, when it already exists (created by a
 * wrapper, or by a `send` first), applies the options that differ with `updateQueue()` and
 * says so: pg-boss's `createQueue` leaves an existing queue as it is, and a queue without the
 * heartbeat would leave a dead worker's job waiting for its expiry. The default heartbeat is
 * applied only where the queue has none.
 */
export async function ensureQueue(
  boss: PgBoss,
  queue: string,
  wanted: QueueOptions,
  logger: Logger,
): Promise<void> {
  const existing = await boss.getQueue(queue);
  if (existing === null) {
    await boss.createQueue(queue, {
      ...wanted,
      heartbeatSeconds: wanted.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS,
    });
    return;
  }
  const target: QueueOptions = { ...wanted };
  if (target.heartbeatSeconds === undefined && existing.heartbeatSeconds == null) {
    target.heartbeatSeconds = DEFAULT_HEARTBEAT_SECONDS;
  }
  const changes: Partial<QueueOptions> = {};
  for (const [name, value] of Object.entries(target) as Array<[keyof QueueOptions, unknown]>) {
    if (value !== undefined && existing[name] !== value) {
      Object.assign(changes, { [name]: value });
    }
  }
  const described = Object.entries(changes).map(
    ([name, value]) =>
      `${name} ${JSON.stringify(existing[name as keyof QueueOptions] ?? null)} -> ${JSON.stringify(value)}`,
  );
  if (described.length === 0) return;
  try {
    await boss.updateQueue(queue, changes);
    logger.warn(bossMessages.queueOptionsApplied(queue, described));
  } catch (error) {
    logger.warn(bossMessages.queueOptionsNotApplied(queue, described, (error as Error).message));
  }
}

/** pg-boss validates every key it is given, so options the user left out are not passed at all. */
export function defined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}
