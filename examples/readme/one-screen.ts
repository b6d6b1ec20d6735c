import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import type { Job } from 'pg-boss';
import { Column, Entity, PrimaryGeneratedColumn, type Repository } from 'typeorm';
import {
  CheckpointCtx,
  Checkpointed,
  CheckpointModule,
  type CheckpointContext,
} from 'nestjs-checkpoint';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

@Entity()
export class Decision {
  @PrimaryGeneratedColumn() id!: number;
  @Column() abstractId!: string;
  @Column() include!: boolean;
}

/** Stands in for the slow part (an LLM call, say). */
@Injectable()
export class Classifier {
  classify(ids: string[]): Promise<Array<Omit<Decision, 'id'>>> {
    return Promise.resolve(
      ids.map((abstractId) => ({ abstractId, include: abstractId.endsWith('7') })),
    );
  }
}

@Injectable()
export class ScreeningService {
  constructor(
    private readonly classifier: Classifier,
    @InjectRepository(Decision) readonly decisions: Repository<Decision>,
  ) {}

  @Checkpointed({ queue: 'screening', batchSize: 50, transactional: true })
  async screen(job: Job<{ ids: string[] }>, @CheckpointCtx() ctx?: CheckpointContext) {
    for await (const batch of ctx!.batches(job.data.ids)) {
      const decisions = await this.classifier.classify(batch.items);
      await batch.manager.insert(Decision, decisions); // commits with the checkpoint, or not at all
    }
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url, autoLoadEntities: true, synchronize: true }),
    TypeOrmModule.forFeature([Decision]), // registers the entity that batch.manager writes
    CheckpointModule.forRoot({ schema: 'checkpoint', boss: { connectionString: url } }),
  ],
  providers: [Classifier, ScreeningService],
})
export class AppModule {}
