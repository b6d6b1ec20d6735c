import { Injectable } from '@nestjs/common';
import { CheckpointService } from 'nestjs-checkpoint';
import { Column, DataSource, Entity, PrimaryGeneratedColumn } from 'typeorm';

@Entity()
export class Effect {
  @PrimaryGeneratedColumn() id!: number;
  @Column() item!: string;
}

/** The decorator's protocol by hand: claim, one advance per batch, then complete or fail. */
@Injectable()
export class HandWrittenJob {
  constructor(
    private readonly checkpoints: CheckpointService,
    private readonly dataSource: DataSource,
  ) {}

  async run(key: string, items: string[]): Promise<void> {
    // CheckpointLeaseConflictError while a live attempt owns the key.
    const claim = await this.checkpoints.claim(key, { totalItems: items.length });
    try {
      for (let i = claim.resumeFrom; i < items.length; i += 100) {
        const batch = items.slice(i, i + 100);
        await this.dataSource.transaction(async (manager) => {
          await manager.insert(
            Effect,
            batch.map((item) => ({ item })),
          );
          // One UPDATE, fenced by the epoch, in the batch's transaction.
          const currentIndex = i + batch.length; // never past the end of the input
          await this.checkpoints.advance(key, claim.epoch, { currentIndex }, { manager });
        });
      }
      await this.checkpoints.complete(key, claim.epoch, { items: items.length });
    } catch (error) {
      await this.checkpoints.fail(key, claim.epoch, error); // progress is kept for the next attempt
      throw error;
    }
  }
}
