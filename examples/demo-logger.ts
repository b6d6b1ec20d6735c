import type { LoggerService } from '@nestjs/common';
import type { ProgressView } from './progress-view.js';

/**
 * Nest's log lines for the demo: warnings and errors go through the progress view, which clears
 * the bar's line first and redraws the bar below them, so that they never land inside it.
 */
export class DemoLogger implements LoggerService {
  constructor(private readonly view: ProgressView) {}

  log(): void {
    // The demo's own lines say what happens; the library's informational lines would repeat it.
  }

  warn(message: unknown, ...rest: unknown[]): void {
    this.view.say(`warning${context(rest)}: ${String(message)}`);
  }

  error(message: unknown, ...rest: unknown[]): void {
    this.view.say(`error${context(rest)}: ${String(message)}`);
  }

  fatal(message: unknown, ...rest: unknown[]): void {
    this.error(message, ...rest);
  }
}

/** Nest passes the context last (after an optional stack for errors). */
function context(rest: unknown[]): string {
  const last = rest[rest.length - 1];
  return typeof last === 'string' && !last.includes('\n') ? ` [${last}]` : '';
}
