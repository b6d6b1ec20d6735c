import { Injectable } from '@nestjs/common';
import {
  CHECKPOINT_CONTEXT,
  CheckpointCtx,
  Checkpointed,
  type CheckpointContext,
} from 'nestjs-checkpoint';

interface Extraction {
  taskId: string;
  rows: string[];
}

@Injectable()
export class ExtractionService {
  @Checkpointed({
    key: (input: Extraction) => `extract:${input.taskId}`, // for a queue: '<queue>:<job id>'
    batchSize: 50, // or { targetMs: 2000, min: 10, max: 500 }: about 2 s per batch
    transactional: true, // batch.manager writes commit with the checkpoint
    fingerprint: (input: Extraction) => input.rows, // default: all arguments; false: no check
    onInputChange: 'fail', // | 'restart' (start over) | 'resume' (keep progress)
    onCompleted: 'return', // | 'rerun': a call on a completed key returns the stored result
  })
  async extract(
    input: Extraction,
    @CheckpointCtx() ctx: CheckpointContext = CHECKPOINT_CONTEXT,
  ): Promise<number> {
    let extracted = 0;
    for await (const batch of ctx.batches(input.rows)) extracted += batch.items.length;
    return extracted;
  }
}
