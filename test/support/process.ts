import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DATABASE_URL } from './database.js';

/** A child Node process running one of the compiled fixtures in build/test/fixtures. */
export class Child {
  readonly lines: string[] = [];
  private readonly waiters: Array<{
    test: (line: string) => boolean;
    resolve: (line: string) => void;
  }> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  private constructor(readonly process: ChildProcess) {
    let buffer = '';
    process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        this.lines.push(line);
        for (const waiter of [...this.waiters]) {
          if (waiter.test(line)) {
            this.waiters.splice(this.waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        }
      }
    });
    process.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) =>
      process.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  /** Starts `build/test/fixtures/<name>.js` with the given environment. */
  static start(name: string, env: Record<string, string>): Child {
    return Child.startScript(
      fileURLToPath(new URL(`../fixtures/${name}.js`, import.meta.url)),
      env,
    );
  }

  /** Starts a compiled script by its path (a fixture of another build). */
  static startScript(
    script: string,
    env: Record<string, string>,
    options: { stdin?: boolean } = {},
  ): Child {
    const child = spawn(process.execPath, [script], {
      // NODE_TEST_CONTEXT would make a child behave as a test-runner subprocess.
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, DATABASE_URL, ...env },
      stdio: [options.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    return new Child(child);
  }

  /**
   * Resolves with the first line (already seen or to come) that matches. The default bound is
   * for a busy machine: a fixture boots Nest, TypeORM and pg-boss in about 3 s of CPU, which
   * took over 30 s next to two CPU burners and the rest of a shared 2-core machine.
   */
  waitFor(test: (line: string) => boolean, timeoutMs = 120_000): Promise<string> {
    return this.watch(test, timeoutMs).line;
  }

  /**
   * The first line that matches among `children`, and the child that printed it; the others stop
   * waiting (a race of waitFor calls would leave the losers' timers holding the process open).
   */
  static async firstOf(
    children: Child[],
    test: (line: string) => boolean,
    timeoutMs = 120_000,
  ): Promise<{ child: Child; line: string }> {
    const watches = children.map((child) => child.watch(test, timeoutMs));
    try {
      return await Promise.race(
        watches.map(({ line }, i) => line.then((found) => ({ child: children[i], line: found }))),
      );
    } finally {
      for (const watch of watches) watch.cancel();
    }
  }

  /**
   * The first line among `children` that matches and comes after what each has printed so far,
   * and the child that printed it (the others stop waiting). For work that any of several
   * workers may take: which one gets the next pg-boss job is pg-boss's choice.
   */
  static async nextOf(
    children: Child[],
    test: (line: string) => boolean,
    timeoutMs = 60_000,
  ): Promise<{ child: Child; line: string }> {
    const watches = children.map((child) => {
      const seen = child.lines.length;
      let index = 0;
      // watch tests the lines seen first, then each new one: skip the old ones by position.
      return child.watch((line) => ++index > seen && test(line), timeoutMs);
    });
    try {
      return await Promise.race(
        watches.map(({ line }, i) => line.then((found) => ({ child: children[i], line: found }))),
      );
    } finally {
      for (const watch of watches) watch.cancel();
    }
  }

  private watch(
    test: (line: string) => boolean,
    timeoutMs: number,
  ): { line: Promise<string>; cancel: () => void } {
    const seen = this.lines.find(test);
    if (seen !== undefined) return { line: Promise.resolve(seen), cancel: () => undefined };
    let timer: NodeJS.Timeout | undefined;
    const waiter = { test, resolve: (_line: string) => {} };
    const line = new Promise<string>((resolve, reject) => {
      timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(
          new Error(
            `no matching line within ${timeoutMs} ms; stdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`,
          ),
        );
      }, timeoutMs);
      waiter.resolve = (found) => {
        clearTimeout(timer);
        resolve(found);
      };
      this.waiters.push(waiter);
    });
    const cancel = () => {
      clearTimeout(timer);
      const at = this.waiters.indexOf(waiter);
      if (at >= 0) this.waiters.splice(at, 1);
    };
    return { line, cancel };
  }

  /** Writes a line to the child's stdin (started with `stdin: true`). */
  send(line: string): void {
    this.process.stdin?.write(`${line}\n`);
  }

  kill(
    signal: NodeJS.Signals = 'SIGKILL',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.process.exitCode === null && this.process.signalCode === null)
      this.process.kill(signal);
    return this.exited;
  }
}
