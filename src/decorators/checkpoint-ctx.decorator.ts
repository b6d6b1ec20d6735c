import { CHECKPOINT_CTX_METADATA } from '../checkpoint.constants.js';
import { CheckpointError } from '../checkpoint.errors.js';
import type { CheckpointContext } from '../checkpointed.interface.js';

/**
 * Marks the parameter that receives the `CheckpointContext` of a `@Checkpointed()` method.
 * Callers pass anything (or nothing) in that position; the wrapper replaces it. Give it
 * `CHECKPOINT_CONTEXT` as its default, so that callers may leave it out while the method body
 * sees a `CheckpointContext` (no `?`, no `!`):
 *
 * @example
 * ```ts
 * async screen(job: Job<Input>, @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT) {}
 * ```
 */
export function CheckpointCtx(): ParameterDecorator {
  return (target, propertyKey, parameterIndex) => {
    if (propertyKey === undefined) return;
    Reflect.defineMetadata(CHECKPOINT_CTX_METADATA, parameterIndex, target, propertyKey);
  };
}

/**
 * The default value of a `@CheckpointCtx()` parameter: it makes the parameter optional for callers
 * and typed `CheckpointContext` in the body. The wrapper always passes the real context; this
 * placeholder is only ever seen when the method runs without it (an instance made with `new`
 * outside Nest, say), and then any use of it throws an error that says so.
 */
export const CHECKPOINT_CONTEXT: CheckpointContext = new Proxy({} as CheckpointContext, {
  get(_target, property) {
    // Promise resolution and inspection probe `then` and symbols: answer them as a plain object.
    if (property === 'then' || typeof property === 'symbol') return undefined;
    throw new CheckpointError(
      `CheckpointContext.${property} was read outside a checkpointed attempt: the @CheckpointCtx() ` +
        `parameter is filled in by @Checkpointed() on a provider that Nest created; call the ` +
        `method through the provider, not on an instance made with new`,
    );
  },
});
