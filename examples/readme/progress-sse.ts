import { Controller, Param, Sse, type MessageEvent } from '@nestjs/common';
import { CheckpointService } from 'nestjs-checkpoint';
import { map, type Observable } from 'rxjs';

@Controller('jobs')
export class ProgressController {
  constructor(private readonly checkpoints: CheckpointService) {}

  /** Server-sent events: the job's progress as it changes, from any worker process. */
  @Sse(':id/progress')
  progress(@Param('id') id: string): Observable<MessageEvent> {
    return this.checkpoints.watch(`screening:${id}`).pipe(map((data) => ({ data })));
  }
}
