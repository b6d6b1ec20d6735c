/** What the progress bar shows: the run's figures and this demo process's attempt. */
export interface RunProgress {
  processed: number;
  total: number;
  itemsPerSecond: number | null;
  etaSeconds: number | null;
  chunksDone: number;
  chunks: number;
  attempt: number;
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
      ` | ${rate} | ETA ${eta} | chunks ${progress.chunksDone}/${progress.chunks} | attempt ${progress.attempt}`;
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
