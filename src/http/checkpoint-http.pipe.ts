import {
  BadRequestException,
  Injectable,
  ValidationPipe,
  type ArgumentMetadata,
} from '@nestjs/common';
import { httpMessages } from './checkpoint-http.messages.js';

/** Bodies and queries of this API are flat: a few levels at most. */
const MAX_DEPTH = 8;

/**
 * The module's validation: a value nested deeper than the API's own shapes is refused before
 * class-transformer walks it (which recurses, and overflowed the stack at 5,000 levels), then
 * the DTO's rules (unknown fields refused, each field named in its error).
 */
@Injectable()
export class CheckpointHttpPipe extends ValidationPipe {
  constructor() {
    super({ transform: true, whitelist: true, forbidNonWhitelisted: true });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'custom') return value;
    if (tooDeep(value)) throw new BadRequestException(httpMessages.bodyTooDeep(MAX_DEPTH));
    return super.transform(value, metadata) as Promise<unknown>;
  }
}

/** Whether `value` nests deeper than MAX_DEPTH (walked without recursion). */
function tooDeep(value: unknown): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const next = stack.pop() as { value: unknown; depth: number };
    if (typeof next.value !== 'object' || next.value === null) continue;
    if (next.depth >= MAX_DEPTH) return true;
    for (const child of Object.values(next.value)) {
      stack.push({ value: child, depth: next.depth + 1 });
    }
  }
  return false;
}
