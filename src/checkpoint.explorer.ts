import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper.js';
import { batchSizeProblems } from './batch-sizer.js';
import { CheckpointMetadataAccessor } from './checkpoint-metadata.accessor.js';
import { CheckpointConfigError, CheckpointValidationError } from './checkpoint.errors.js';
import { messages } from './checkpoint.messages.js';
import type { CheckpointedMethod } from './attempt/attempt.interfaces.js';
import { CheckpointRunner } from './attempt/checkpoint.runner.js';
import { assertKey } from './checkpoint.validation.js';
import type { CheckpointedOptions } from './checkpointed.interface.js';
import { bossJobOf } from './boss/boss-job.js';
import { CheckpointQueues } from './boss/checkpoint-queues.js';
import { itemPolicyProblems, mergePolicies } from './item-policy.js';
import { CHECKPOINT_OPTIONS } from './checkpoint.constants.js';
import type { ResolvedCheckpointOptions } from './checkpoint.options.js';

type Method = (...args: unknown[]) => unknown;

/**
 * Finds `@Checkpointed()` methods of singleton providers and controllers at module init,
 * validates their options (a bad one stops bootstrap), and replaces each on its instance with
 * a wrapper that runs it as a checkpointed attempt. Queue methods are handed to
 * CheckpointQueues, which starts their pg-boss workers at bootstrap.
 */
@Injectable()
export class CheckpointExplorer implements OnModuleInit {
  private readonly logger = new Logger('Checkpoint');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly accessor: CheckpointMetadataAccessor,
    private readonly runner: CheckpointRunner,
    private readonly queues: CheckpointQueues,
    @Inject(CHECKPOINT_OPTIONS) private readonly options: ResolvedCheckpointOptions,
  ) {}

  onModuleInit(): void {
    const wrappers: InstanceWrapper[] = [
      ...this.discovery.getProviders(),
      ...this.discovery.getControllers(),
    ];
    for (const wrapper of wrappers) {
      const instance: unknown = wrapper.instance;
      if (instance === null || typeof instance !== 'object') continue;
      const prototype = Object.getPrototypeOf(instance) as object | null;
      if (prototype === null) continue;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const original = (prototype as Record<string, unknown>)[name] as Method;
        const options = this.accessor.getCheckpointedOptions(original);
        if (options === undefined) continue;
        const where = `${instance.constructor.name}.${name}`;
        if (!wrapper.isDependencyTreeStatic()) {
          this.logger.warn(`${where}: @Checkpointed() is ignored on request-scoped providers`);
          continue;
        }
        // A queue's module options fill in what the decorator leaves out of retry and skip.
        const policies = mergePolicies(options, this.options.queues[options.queue ?? '']);
        const method: CheckpointedMethod = {
          where,
          options: { ...options, ...policies },
          original,
          contextIndex: this.accessor.getContextIndex(prototype, name),
          key: deriveKey(where, { ...options, ...policies }),
        };
        this.wrap(instance as Record<string, unknown>, name, method, options.queue === undefined);
        if (options.queue !== undefined) this.queues.register(options.queue, method, instance);
      }
    }
  }

  /**
   * Replaces the method on the instance, keeping its name and every metadata key. A method
   * without `queue` whose first argument is a pg-boss job (a handler under a wrapper's own
   * decorator) runs as that job's attempt: the row records the queue and job id, so that the
   * reaper and the hand-back at shutdown cover it.
   */
  private wrap(
    instance: Record<string, unknown>,
    name: string,
    method: CheckpointedMethod,
    detectJobs: boolean,
  ): void {
    const runner = this.runner;
    const queues = this.queues;
    const wrapped = function (this: object, ...args: unknown[]) {
      const job = detectJobs ? bossJobOf(args[0]) : undefined;
      return job === undefined
        ? runner.run(method, this, args)
        : queues.runJob(method, this, args, job, false);
    };
    Object.defineProperty(wrapped, 'name', { value: name });
    for (const metadataKey of Reflect.getMetadataKeys(method.original) as unknown[]) {
      Reflect.defineMetadata(
        metadataKey,
        Reflect.getMetadata(metadataKey, method.original),
        wrapped,
      );
    }
    instance[name] = wrapped;
  }
}

/** Validates the options and builds the key function; a problem stops bootstrap. */
function deriveKey(where: string, options: CheckpointedOptions): (args: unknown[]) => string {
  const problems = [
    ...batchSizeProblems(options.batchSize),
    ...itemPolicyProblems({ retry: options.retry, skip: options.skip }),
  ];
  if (
    options.onInputChange !== undefined &&
    !['fail', 'restart', 'resume'].includes(options.onInputChange)
  ) {
    problems.push(
      `onInputChange must be 'fail', 'restart' or 'resume' (got ${JSON.stringify(options.onInputChange)})`,
    );
  }
  if (options.onCompleted !== undefined && !['return', 'rerun'].includes(options.onCompleted)) {
    problems.push(
      `onCompleted must be 'return' or 'rerun' (got ${JSON.stringify(options.onCompleted)})`,
    );
  }
  if (
    options.queue !== undefined &&
    (typeof options.queue !== 'string' || options.queue.length === 0)
  ) {
    problems.push('queue must be a non-empty string');
  }
  if (options.key !== undefined && typeof options.key !== 'function') {
    problems.push("key must be a function of the method's arguments");
  }
  if (
    options.fingerprint !== undefined &&
    options.fingerprint !== false &&
    typeof options.fingerprint !== 'function'
  ) {
    problems.push("fingerprint must be a function of the method's arguments, or false");
  }
  if (problems.length > 0)
    throw new CheckpointConfigError(messages.badDecoratorOptions(where, problems));

  const { key, queue } = options;
  if (key !== undefined) {
    return (args) => {
      const value = key(...(args as never[]));
      try {
        assertKey(value);
      } catch (error) {
        throw new CheckpointValidationError(
          messages.keyFunctionFailed(where, (error as Error).message),
        );
      }
      return value;
    };
  }
  if (queue === undefined) throw new CheckpointConfigError(messages.noKey(where));
  return (args) => {
    const job = args[0] as { id?: unknown } | undefined;
    if (typeof job?.id !== 'string' || job.id.length === 0) {
      throw new CheckpointValidationError(
        messages.keyFunctionFailed(
          where,
          'the first argument must be a pg-boss job with an id (or give a `key` option)',
        ),
      );
    }
    return `${queue}:${job.id}`;
  };
}
