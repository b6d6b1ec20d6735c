import { CHECKPOINT_CTX_METADATA } from '../checkpoint.constants.js';

/**
 * Marks the parameter that receives the `CheckpointContext` of a `@Checkpointed()` method.
 * Callers pass anything (or nothing) in that position; the wrapper replaces it.
 */
export function CheckpointCtx(): ParameterDecorator {
  return (target, propertyKey, parameterIndex) => {
    if (propertyKey === undefined) return;
    Reflect.defineMetadata(CHECKPOINT_CTX_METADATA, parameterIndex, target, propertyKey);
  };
}
