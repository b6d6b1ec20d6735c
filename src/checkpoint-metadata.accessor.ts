import { Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { CHECKPOINT_CTX_METADATA, CHECKPOINTED_METADATA } from './checkpoint.constants.js';
import type { CheckpointedOptions } from './checkpointed.interface.js';

/** Reads what `@Checkpointed()` and `@CheckpointCtx()` wrote. */
@Injectable()
export class CheckpointMetadataAccessor {
  constructor(private readonly reflector: Reflector) {}

  getCheckpointedOptions(method: (...args: never[]) => unknown): CheckpointedOptions | undefined {
    return this.reflector.get<CheckpointedOptions | undefined>(CHECKPOINTED_METADATA, method);
  }

  /** Index of the `@CheckpointCtx()` parameter, if any. */
  getContextIndex(prototype: object, methodName: string): number | undefined {
    return Reflect.getMetadata(CHECKPOINT_CTX_METADATA, prototype, methodName) as
      number | undefined;
  }
}
