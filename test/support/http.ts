import type { CanActivate, ExecutionContext, INestApplication, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CheckpointModule, type CheckpointModuleOptions } from '../../src/index.js';
import { CheckpointHttpModule } from '../../src/http/index.js';
import { DATABASE_URL } from './database.js';

/** The test's control guard: approves requests that carry `Authorization: Bearer <TOKEN>`. */
export const OPERATOR_TOKEN = 'operator-secret';

export class TokenGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string> }>();
    return request.headers.authorization === `Bearer ${OPERATOR_TOKEN}`;
  }
}

export interface HttpTestApp {
  app: INestApplication;
  url: string;
}

/**
 * Boots an HTTP application (platform-express, a port chosen by the system) with CheckpointModule
 * and CheckpointHttpModule at `path`, with or without a control guard.
 */
export async function createHttpApp(options: {
  schema: string;
  path?: string;
  guard?: Type<CanActivate> | CanActivate;
  checkpoint?: Partial<CheckpointModuleOptions>;
}): Promise<HttpTestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: DATABASE_URL,
        schema: options.schema,
        logging: false,
        extra: { max: 8 },
      }),
      CheckpointModule.forRoot({ schema: options.schema, ...options.checkpoint }),
      CheckpointHttpModule.forRoot({
        path: options.path ?? 'ops/checkpoints',
        guard: options.guard,
      }),
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: ['error', 'warn'] });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return { app, url };
}

/** A JSON request; returns the status and the parsed body. */
export async function request(
  url: string,
  options: { method?: string; body?: unknown; token?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, {
    method: options.method ?? 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, body };
}
