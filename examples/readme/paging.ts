import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  Checkpointed,
  type CheckpointContext,
} from 'nestjs-checkpoint';
import { Column, Entity, MoreThan, PrimaryGeneratedColumn, type Repository } from 'typeorm';

@Entity()
export class Article {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
  @Column({ type: 'text', nullable: true }) searchText!: string | null;
}

@Injectable()
export class ReindexService {
  constructor(@InjectRepository(Article) private readonly articles: Repository<Article>) {}

  @Checkpointed({ key: () => 'reindex-articles', batchSize: 500, transactional: true })
  async reindex(@CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT): Promise<void> {
    // Keyset pagination: the rows after the last id seen, in id order.
    const page = (after: number | null, limit: number) =>
      this.articles.find({
        where: { id: MoreThan(after ?? 0) },
        order: { id: 'ASC' },
        take: limit,
      });
    for await (const batch of ctx.pages(page, (article) => article.id)) {
      const reindexed = batch.items.map((article) => ({
        ...article,
        searchText: article.title.toLowerCase(),
      }));
      await batch.manager.save(Article, reindexed); // commits with the cursor of this page
    }
  }
}
