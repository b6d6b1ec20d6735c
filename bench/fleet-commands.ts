// Bench section 15's commands to its fleet (bench/fleet-worker.ts reads them on stdin): drive
// one way for a slice, hold or free processes, read their statement counts.
import type { Child } from '../test/support/process.js';
import type { BenchEnv } from './env.js';

/** Each slice: warm-up, then the counted window. */
export const WARMUP_MS = 1000;
export const WINDOW_MS = 2000;

/** What the fleet's processes counted between two readings. */
export interface Counts {
  at: number;
  renewals: number;
  looks: number;
  asks: number;
}

/** The next line of `child` that starts with `prefix`, after those it already printed. */
function nextLine(child: Child, prefix: string): Promise<string> {
  let earlier = child.lines.filter((line) => line.startsWith(prefix)).length;
  return child.waitFor((line) => line.startsWith(prefix) && earlier-- <= 0, 60_000);
}

/** What one slice of a way counted over the fleet. */
export interface Slice {
  /** Saves inside the counted window. */
  saves: number;
  /** The processes' CPU time per save over the whole slice, in microseconds. */
  cpuPerSaveUs: number;
  /** The progress announcements (NOTIFY statements) the processes sent per second of the slice. */
  notifiesPerSecond: number;
}

/** One slice of `way` in every process at once: the saves counted in the window, summed. */
export async function drive(fleet: readonly Child[], way: 'library' | 'raw'): Promise<Slice> {
  const replies = fleet.map((child) => nextLine(child, 'saves '));
  for (const child of fleet) child.send(`drive ${way} ${WARMUP_MS} ${WINDOW_MS}`);
  const lines = await Promise.all(replies);
  let saves = 0;
  let all = 0;
  let cpuUs = 0;
  let notifies = 0;
  for (const line of lines) {
    const [, inWindow, inSlice, cpu, notified] = line.split(' ').map(Number);
    saves += inWindow;
    all += inSlice;
    cpuUs += cpu;
    notifies += notified;
  }
  return {
    saves,
    cpuPerSaveUs: cpuUs / Math.max(1, all),
    notifiesPerSecond: notifies / ((WARMUP_MS + WINDOW_MS) / 1000),
  };
}

/** Fleet sizes the ceiling is swept at, below the whole fleet (which the slices measured). */
const SWEEP = [1, 4, 8, 16] as const;

/** Saves per second of each way with only the first `n` processes saving, the rest held. */
export interface SweepPoint {
  processes: number;
  library: number;
  raw: number;
}

/**
 * The ceiling on this machine: the same ABBA slices with 1, 4, 8 and 16 of the processes saving
 * and the others held at their next save (their leases and the reaper go on).
 */
export async function sweepCeiling(
  env: BenchEnv,
  fleet: readonly Child[],
  slices: number,
): Promise<SweepPoint[]> {
  const points: SweepPoint[] = [];
  const say = async (children: readonly Child[], command: string, answer: string) => {
    const replies = children.map((child) => nextLine(child, answer));
    for (const child of children) child.send(command);
    await Promise.all(replies);
  };
  for (const n of SWEEP.filter((each) => each < fleet.length)) {
    env.progress(`15. many processes: the ceiling with ${n} of ${fleet.length} saving`);
    const driven = fleet.slice(0, n);
    await say(fleet.slice(n), 'hold', 'held');
    const saves = { library: 0, raw: 0 };
    const rounds = Math.max(2, Math.round(slices / 3));
    for (let slice = 0; slice < 2 * rounds; slice++) {
      const way = (['library', 'raw', 'raw', 'library'] as const)[slice % 4];
      saves[way] += (await drive(driven, way)).saves;
    }
    const seconds = (rounds * WINDOW_MS) / 1000;
    points.push({ processes: n, library: saves.library / seconds, raw: saves.raw / seconds });
  }
  await say(fleet, 'free', 'freed');
  return points;
}

/** The renewals, reaper looks and reaper questions every process has sent so far, summed. */
export async function countAll(fleet: readonly Child[]): Promise<Counts> {
  const replies = fleet.map((child) => nextLine(child, 'counts '));
  for (const child of fleet) child.send('counts');
  const lines = await Promise.all(replies);
  const at = performance.now();
  let renewals = 0;
  let looks = 0;
  let asks = 0;
  for (const line of lines) {
    const [, r, l, a] = line.split(' ');
    renewals += Number(r);
    looks += Number(l);
    asks += Number(a);
  }
  return { at, renewals, looks, asks };
}
