import type {
  CanActivate,
  ExecutionContext,
  INestApplication,
  LoggerService,
  Provider,
  Type,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Logger as TypeOrmLogger } from 'typeorm';
import { CheckpointModule, type CheckpointModuleOptions } from '../../src/index.js';
import { CheckpointHttpModule } from '../../src/http/index.js';
import { DATABASE_URL } from './database.js';

/** The test application's sign-in: a session cookie, as a Nest app with express-session has. */
export const SESSION_COOKIE = 'app-session';
/** A signed-in operator who may read. */
export const READER = 'reader-session';
/** A signed-in operator who may also control. */
export const OPERATOR = 'operator-session';

function session(context: ExecutionContext): string | undefined {
  const request = context.switchToHttp().getRequest<{ headers: Record<string, string> }>();
  const cookies = (request.headers.cookie ?? '').split(';').map((part) => part.trim());
  const found = cookies.find((part) => part.startsWith(`${SESSION_COOKIE}=`));
  return found?.slice(SESSION_COOKIE.length + 1);
}

/** The application's guard: any signed-in session. */
export class SessionGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const id = session(context);
    return id === READER || id === OPERATOR;
  }
}

/** The application's control permission: operators only. */
export class OperatorGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return session(context) === OPERATOR;
  }
}

export interface HttpTestApp {
  app: INestApplication;
  url: string;
}

/** Keeps what the application logged, to check what bootstrap said. */
export class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  log(): void {}
  error(message: unknown): void {
    this.lines.push(`error ${String(message)}`);
  }
  warn(message: unknown): void {
    this.lines.push(`warn ${String(message)}`);
  }
}

/**
 * Boots an HTTP application (platform-express, a port chosen by the system) with CheckpointModule
 * and CheckpointHttpModule at `path`, with the guards given (none: an unprotected module).
 */
export async function createHttpApp(options: {
  schema: string;
  path?: string;
  guard?: Type<CanActivate> | CanActivate;
  controlGuard?: Type<CanActivate> | CanActivate;
  checkpoint?: Partial<CheckpointModuleOptions>;
  logger?: LoggerService;
  pool?: number;
  /** Sees every statement the application sends (the library logs each one to it). */
  statements?: TypeOrmLogger;
  /** The application's own providers (a chunk handler, say). */
  providers?: Provider[];
  /** Another database URL than DATABASE_URL (a pooler in front of it). */
  url?: string;
}): Promise<HttpTestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: options.url ?? DATABASE_URL,
        schema: options.schema,
        logging: false,
        logger: options.statements,
        extra: { max: options.pool ?? 8 },
      }),
      CheckpointModule.forRoot({ schema: options.schema, ...options.checkpoint }),
      CheckpointHttpModule.forRoot({
        path: options.path ?? 'ops/checkpoints',
        guard: options.guard,
        controlGuard: options.controlGuard,
      }),
    ],
    providers: options.providers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: options.logger ?? ['error', 'warn'] });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return { app, url };
}

/** A JSON request; returns the status, the parsed body and the headers. */
export async function request(
  url: string,
  options: {
    method?: string;
    body?: unknown;
    /** The session cookie's value (READER, OPERATOR), or none. */
    session?: string;
    /** A body sent as is (not JSON-encoded). */
    raw?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
  if (options.session !== undefined) headers.cookie = `${SESSION_COOKIE}=${options.session}`;
  if (options.body !== undefined || options.raw !== undefined)
    headers['content-type'] ??= 'application/json';
  const response = await fetch(url, {
    method: options.method ?? 'GET',
    headers,
    body: options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
  });
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, body, headers: response.headers };
}

/** Splits a server-sent event stream into its events' data, chunk by chunk. */
export class EventData {
  private readonly decoder = new TextDecoder();
  private buffer = '';

  /** The data of every event the chunk completed, in order (events without data are skipped). */
  push(chunk: Uint8Array): string[] {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    const found: string[] = [];
    for (let end = this.buffer.indexOf('\n\n'); end >= 0; end = this.buffer.indexOf('\n\n')) {
      const message = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const data = message
        .split('\n')
        .find((line) => line.startsWith('data: '))
        ?.slice(6);
      if (data !== undefined) found.push(data);
    }
    return found;
  }
}

/** A client of a server-sent-events endpoint that keeps the last progress it saw of one key. */
export class SseClient {
  /** Processed items of the watched key in the last event that named it (-1: none yet). */
  seen = -1;
  private readonly controller = new AbortController();
  private waiters: Array<{ at: number; resolve: () => void }> = [];
  private readonly done: Promise<void>;

  constructor(
    url: string,
    session: string,
    private readonly key: string,
  ) {
    this.done = this.read(url, session).catch((error: unknown) => {
      if (!this.controller.signal.aborted) throw error;
    });
  }

  /** Resolves once an event shows the key at `at` items or more. */
  reached(at: number): Promise<void> {
    if (this.seen >= at) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ at, resolve }));
  }

  async close(): Promise<void> {
    this.controller.abort();
    await this.done;
  }

  private async read(url: string, session: string): Promise<void> {
    const response = await fetch(url, {
      signal: this.controller.signal,
      headers: { cookie: `${SESSION_COOKIE}=${session}`, accept: 'text/event-stream' },
    });
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    const events = new EventData();
    for await (const chunk of response.body as ReadableStream<Uint8Array>) {
      for (const data of events.push(chunk)) {
        this.take(JSON.parse(data) as { key?: { key: string; processedItems: number } });
      }
    }
  }

  private take(event: { key?: { key: string; processedItems: number } }): void {
    if (event.key?.key !== this.key) return;
    this.seen = Math.max(this.seen, event.key.processedItems);
    const ready = this.waiters.filter((waiter) => waiter.at <= this.seen);
    this.waiters = this.waiters.filter((waiter) => waiter.at > this.seen);
    for (const waiter of ready) waiter.resolve();
  }
}
