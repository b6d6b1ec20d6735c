import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** One screening decision per item: the effect that must happen exactly once. */
@Entity({ name: 'decision' })
export class Decision {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column('uuid')
  runId!: string;

  @Column('int')
  item!: number;

  @Column('text')
  verdict!: 'include' | 'exclude';

  @Column('int')
  attempt!: number;
}
