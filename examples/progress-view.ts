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

/** What this demo process is doing: the attempt it announced, and when it started. */
export interface CurrentAttempt {
  /** The attempt number the demo announced (1 for a new run, one more than before on a resume). */
  attempt: number;
  /** When this process started, by the database's clock: older rows are a previous attempt's. */
  since: Date;
}

/**
 * Sums the library's progress of each chunk (null: not claimed yet) into the run's progress.
 * With `current`, a chunk not written since `current.since` (a crashed attempt's row, still
 * `running`, before its job is claimed again) counts its items but not its rate or attempt: the
 * bar shows this attempt's figures from the first frame after a resume.
 */
export function sumProgress(
  chunks: Array<CheckpointProgress | null>,
  total: number,
  batchSize: number,
  current?: CurrentAttempt,
): RunProgress {
  let processed = 0;
  let batches = 0;
  let totalBatches = 0;
  let attempt = current?.attempt ?? 1;
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
    if (current !== undefined && chunk.lastUpdate < current.since) continue;
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
 * A one-line progress bar redrawn in place on a terminal, or plain lines when the output is a
 * file or a pipe: exactly one line each time the run reaches a new tenth (0%, 10%, ... 100%;
 * a tenth skipped over in one jump gets no line).
 */
export class ProgressView {
  private lastTenth = -1;
  /** The bar as last drawn, redrawn under any message printed while it shows. */
  private bar: string | undefined;

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
      this.bar = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${details}`;
      this.out.write(`\r\x1b[2K${this.bar}`);
      return;
    }
    const tenth = Math.floor(fraction * 10);
    if (tenth > this.lastTenth) {
      this.lastTenth = tenth;
      this.out.write(`progress ${details}\n`);
    }
  }

  /**
   * Prints a message on its own line. On a terminal the bar's line is cleared first and the bar
   * redrawn below the message, so that a message never lands inside the bar.
   */
  say(message: string): void {
    if (this.tty && this.bar !== undefined) {
      this.out.write(`\r\x1b[2K${message}\n${this.bar}`);
      return;
    }
    this.out.write(`${message}\n`);
  }

  /** Ends the bar's line, so that whatever prints next starts on a line of its own. */
  done(): void {
    if (this.tty && this.bar !== undefined) this.out.write('\n');
    this.bar = undefined;
  }
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
}

export { number as formatNumber };
