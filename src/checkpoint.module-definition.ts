import { ConfigurableModuleBuilder } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { CHECKPOINT_DATA_SOURCE } from './checkpoint.constants.js';
import { CheckpointModuleOptions } from './checkpoint.options.js';

/** Options of the module definition itself, beside the validated options. */
export interface CheckpointModuleExtras {
  /** Make CheckpointService injectable everywhere without importing the module again. */
  isGlobal?: boolean;
  /** Name of the TypeORM DataSource to use (the default one when absent). */
  dataSource?: string;
}

export const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN, OPTIONS_TYPE, ASYNC_OPTIONS_TYPE } =
  new ConfigurableModuleBuilder<CheckpointModuleOptions>()
    .setClassMethodName('forRoot')
    .setFactoryMethodName('createCheckpointOptions')
    // Every extra needs a default here: Nest strips exactly these keys from the validated options.
    .setExtras<CheckpointModuleExtras>(
      { isGlobal: false, dataSource: undefined },
      (definition, extras) => ({
        ...definition,
        global: extras.isGlobal,
        providers: [
          ...(definition.providers ?? []),
          // The host's DataSource: the library never opens a pool of its own.
          { provide: CHECKPOINT_DATA_SOURCE, useExisting: getDataSourceToken(extras.dataSource) },
        ],
      }),
    )
    .build();
