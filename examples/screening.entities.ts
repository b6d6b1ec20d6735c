import { Column, CreateDateColumn, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';

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

/** A demo run: N items split into chunks, one pg-boss job per chunk. */
@Entity({ name: 'demo_run' })
export class DemoRun {
  @PrimaryColumn('uuid')
  id!: string;

  @Column('int')
  items!: number;

  @Column('uuid', { array: true })
  jobIds!: string[];

  @CreateDateColumn({ type: 'timestamptz' })
  createdAt!: Date;

  @Column('timestamptz', { nullable: true })
  finishedAt!: Date | null;
}
