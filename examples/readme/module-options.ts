import { Injectable, Module } from '@nestjs/common';
import { CheckpointModule } from 'nestjs-checkpoint';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// The plain form: options known at start-up.
export const plain = CheckpointModule.forRoot({
  schema: 'checkpoint',
  boss: { connectionString: url },
});

// The async form: options from another provider (your configuration service, say).
@Injectable()
export class Settings {
  readonly databaseUrl = url;
}

@Module({ providers: [Settings], exports: [Settings] })
export class SettingsModule {}

export const configured = CheckpointModule.forRootAsync({
  imports: [SettingsModule],
  inject: [Settings],
  useFactory: (settings: Settings) => ({ boss: { connectionString: settings.databaseUrl } }),
  isGlobal: true, // extras: CheckpointService injectable everywhere
  dataSource: 'default', // extras: the name of the TypeORM DataSource to use
});
// also forRootAsync({ useClass }) / ({ useExisting }) with a createCheckpointOptions() method
