import type { CheckpointProgress } from '../src/index.js';

/** Progress of a whole run, summed over its chunks' checkpoints. */
export interface RunProgress {
  processed: number;
  total: number;
  itemsPerSecond: number | null;
  etaSeconds: number | null;
  batches: number;
  totalBatches: number;
  attempt: number;
}

/** Sums the library's progress of each chunk (null: not claimed yet) into the run's progress. */
export function sumProgress(
  chunks: Array<CheckpointProgress | null>,
  total: number,
  batchSize: number,
): RunProgress {
  let processed = 0;
  let batches = 0;
  let totalBatches = 0;
  let attempt = 1;
  let rate = 0;
  let running = 0;
  const chunkSize = Math.ceil(total / chunks.length);
  for (const chunk of chunks) {
    if (chunk === null) {
      totalBatches += Math.ceil(chunkSize / batchSize);
      continue;
    }
    processed += chunk.processedItems;
    batches += chunk.processedBatches;
    totalBatches += chunk.totalBatches > 0 ? chunk.totalBatches : Math.ceil(chunkSize / batchSize);
    attempt = Math.max(attempt, chunk.attempt);
    if (chunk.state === 'running' && chunk.itemsPerSecond !== null) {
      rate += chunk.itemsPerSecond;
      running += 1;
    }
  }
  const itemsPerSecond = running > 0 ? rate : null;
  return {
    processed,
    total,
    itemsPerSecond,
    etaSeconds: itemsPerSecond === null ? null : (total - processed) / itemsPerSecond,
    batches,
    totalBatches,
    attempt,
  };
}

const number = new Intl.NumberFormat('en-US');

/**
 * A one-line progress bar redrawn in place on a terminal, or plain lines (every 10%, or every
 * two seconds at most) when the output is a file or a pipe.
 */
export class ProgressView {
  private lastPlain = { at: 0, tenth: -1 };
  private drawn = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  private get tty(): boolean {
    return this.out.isTTY === true;
  }

  update(progress: RunProgress): void {
    const fraction = progress.total > 0 ? progress.processed / progress.total : 0;
    const percent = Math.floor(fraction * 100);
    const rate =
      progress.itemsPerSecond === null
        ? '—'
        : `${number.format(Math.round(progress.itemsPerSecond))} items/s`;
    const eta = progress.etaSeconds === null ? '—' : formatSeconds(progress.etaSeconds);
    const details =
      `${number.format(progress.processed)}/${number.format(progress.total)} ${String(percent).padStart(3)}%` +
      ` | ${rate} | ETA ${eta} | batch ${progress.batches}/${progress.totalBatches} | attempt ${progress.attempt}`;
    if (this.tty) {
      const width = 28;
      const filled = Math.round(fraction * width);
      this.out.write(`\r\x1b[2K[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${details}`);
      this.drawn = true;
      return;
    }
    const tenth = Math.floor(fraction * 10);
    const now = Date.now();
    if (tenth !== this.lastPlain.tenth || now - this.lastPlain.at >= 2000) {
      this.lastPlain = { at: now, tenth };
      this.out.write(`progress ${details}\n`);
    }
  }

  /** Prints a message on its own line (below the bar, which is redrawn on the next update). */
  say(message: string): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
    this.out.write(`${message}\n`);
  }
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
}

export { number as formatNumber };
