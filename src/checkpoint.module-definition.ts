import { ConfigurableModuleBuilder, type InjectionToken } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { CHECKPOINT_DATA_SOURCE } from './checkpoint.constants.js';
import { CHECKPOINT_BOSS_SOURCE } from './boss/checkpoint-boss.js';
import { CheckpointModuleOptions } from './checkpoint.options.js';

/** Options of the module definition itself, beside the validated options. */
export interface CheckpointModuleExtras {
  /** Make CheckpointService injectable everywhere without importing the module again. */
  isGlobal?: boolean;
  /** Name of the TypeORM DataSource to use (the default one when absent). */
  dataSource?: string;
  /**
   * Use the application's PgBoss: the token it is provided under (`PgBoss` for most wrappers).
   * The provider must be visible to the module: global, or exported by a module in
   * `forRootAsync({ imports })`. The application starts and stops it; the library stops its
   * workers and hands its jobs back before anyone's `stop()` goes through.
   */
  bossToken?: InjectionToken;
}

export const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN, OPTIONS_TYPE, ASYNC_OPTIONS_TYPE } =
  new ConfigurableModuleBuilder<CheckpointModuleOptions>()
    .setClassMethodName('forRoot')
    .setFactoryMethodName('createCheckpointOptions')
    // Every extra needs a default here: Nest strips exactly these keys from the validated options.
    .setExtras<CheckpointModuleExtras>(
      { isGlobal: false, dataSource: undefined, bossToken: undefined },
      (definition, extras) => ({
        ...definition,
        global: extras.isGlobal,
        providers: [
          ...(definition.providers ?? []),
          // The host's DataSource: the library never opens a pool of its own.
          { provide: CHECKPOINT_DATA_SOURCE, useExisting: getDataSourceToken(extras.dataSource) },
          ...(extras.bossToken === undefined
            ? []
            : [{ provide: CHECKPOINT_BOSS_SOURCE, useExisting: extras.bossToken }]),
        ],
      }),
    )
    .build();
