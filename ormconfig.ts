// The DataSource for the TypeORM CLI in development, on DATABASE_URL:
//   npm run migration:run   (compiles to build/ when a source changed, then
//   typeorm migration:run -d build/ormconfig.js)
// It carries the library's own migrations, the way an application that runs them with its own
// migrations would (with `migrationsRun: false` on CheckpointModule).
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { createCheckpointTypeOrmMigrations } from './src/index.js';

export default new DataSource({
  type: 'postgres',
  url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  migrations: createCheckpointTypeOrmMigrations(process.env.CHECKPOINT_SCHEMA ?? 'checkpoint'),
});
