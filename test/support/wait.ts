import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Asks `check` every 50 ms until it answers something other than undefined or false, and returns
 * that. Fails after `timeoutMs`, naming `what` (or what the function says of the state then).
 */
export async function waitUntil<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  what: string | (() => string),
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await sleep(50);
  }
}
