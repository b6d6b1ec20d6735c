import { Logger } from '@nestjs/common';
import { CHECKPOINT_CONTROLS, type CheckpointControl } from '../checkpoint.constants.js';
import {
  CheckpointEpochMovedError,
  CheckpointLeaseConflictError,
  CheckpointValidationError,
  controlError,
} from '../checkpoint.errors.js';
import type { ControlAction, RewindOptions, WriteOptions } from '../checkpoint.interfaces.js';
import { messages } from '../checkpoint.messages.js';
import type { ResolvedCheckpointOptions } from '../checkpoint.options.js';
import type { CheckpointRepository } from '../checkpoint.repository.js';
import type { CheckpointSession } from '../checkpoint.session.js';
import { assertCount, assertKey, assertWriteOptions, toJson } from '../checkpoint.validation.js';
import type { CheckpointLeases } from '../leases/checkpoint-leases.js';
import { findRow } from '../progress/checkpoint-reads.js';

const logger = new Logger('Checkpoint');

/**
 * Operators' requests (pause, resume, cancel, rewind) from any process, and this process's LISTEN
 * for them: an attempt of this process stops at its next batch boundary when asked.
 * @internal the façade's control calls; the ownership room asks it why a claim was refused
 */
export class CheckpointControls {
  private controlListening?: Promise<unknown>;

  constructor(
    private readonly options: ResolvedCheckpointOptions,
    private readonly repository: CheckpointRepository,
    private readonly session: CheckpointSession,
    private readonly leases: CheckpointLeases,
  ) {}

  /** See CheckpointService.control (and pause, resume, cancel). */
  async control(key: string, action: ControlAction): Promise<boolean> {
    assertKey(key);
    assertControlAction(action);
    const sql = this.repository.sql;
    const query =
      action === CHECKPOINT_CONTROLS.pause
        ? sql.pause(key)
        : action === CHECKPOINT_CONTROLS.cancel
          ? sql.cancel(key)
          : sql.resume(key);
    const { rows } = await this.repository.run(action, key, query);
    if (rows.length > 0) this.requested(action, key);
    return rows.length > 0;
  }

  /** See CheckpointService.controlRun. */
  async controlRun(
    runId: string,
    action: ControlAction,
    options: WriteOptions = {},
  ): Promise<number> {
    assertKey(runId);
    assertControlAction(action);
    assertWriteOptions('controlRun', options);
    const sql = this.repository.sql;
    const query =
      action === 'pause'
        ? sql.pauseRun(runId)
        : action === 'cancel'
          ? sql.cancelRun(runId)
          : sql.resumeRun(runId);
    const { rows } = await this.repository.run<{ key: string }>(
      action,
      undefined,
      query,
      options.manager,
    );
    for (const row of rows) this.requested(action, row.key);
    return rows.length;
  }

  /** See CheckpointService.rewind. */
  async rewind(key: string, toIndex: number, options: RewindOptions): Promise<number> {
    assertKey(key);
    assertCount('toIndex', toIndex);
    assertCount('expectedEpoch', options?.expectedEpoch);
    const query = this.repository.sql.rewind(
      key,
      toIndex,
      options.expectedEpoch,
      toJson('cursor', options.cursor, this.options.maxPayloadBytes),
    );
    const { rows } = await this.repository.run<{ epoch: string }>('rewind', key, query);
    if (rows[0] !== undefined) {
      this.session.announce(key);
      return Number(rows[0].epoch);
    }
    // Refused: find out why (off any hot path) and say so.
    const row = await findRow(this.repository, 'rewind', key);
    if (row === undefined || Number(row.epoch) !== options.expectedEpoch) {
      throw new CheckpointEpochMovedError(
        key,
        options.expectedEpoch,
        row === undefined ? null : Number(row.epoch),
      );
    }
    if (Number(row.current_index) < toIndex) {
      throw new CheckpointValidationError(
        messages.rewindPastProgress(key, toIndex, Number(row.current_index)),
      );
    }
    throw new CheckpointLeaseConflictError(key, messages.rewindRunning(key));
  }

  /** See CheckpointService.onControl. */
  async onControl(listener: (action: ControlAction, key: string) => void): Promise<() => void> {
    return this.session.subscribeControl((action, key) => {
      if (isControlAction(action)) listener(action, key);
    });
  }

  /** LISTENs for operators' requests once per process, so they reach attempts between batches. */
  listenForControl(): Promise<unknown> {
    this.controlListening ??= this.session
      .subscribeControl((action, key) => {
        if (action === 'pause' || action === 'cancel') this.obeyLocally(action, key);
      })
      .catch((error: Error) => {
        // The lease renewal still reads the requests (every leaseTtlMs / 3); try LISTEN again later.
        this.controlListening = undefined;
        logger.warn(`could not listen for control requests: ${error.message}`);
      });
    return this.controlListening;
  }

  /** Why a claim on `key` was refused: an operator's request, or null (another live owner). */
  async refusedControl(key: string): Promise<CheckpointControl | null> {
    // When no live attempt owns the key, settle it as asked (decided in the statement).
    const { rows } = await this.repository.run<{ control: CheckpointControl }>(
      'claim',
      key,
      this.repository.sql.settleControl(key),
    );
    if (rows[0] === undefined)
      return (await findRow(this.repository, 'claim', key))?.control ?? null;
    this.session.announce(key);
    return rows[0].control;
  }

  /** A request made here: announced to processes that poll, obeyed here at once. */
  private requested(action: ControlAction, key: string): void {
    // Processes that poll cannot hear the statement's NOTIFY: they read it as a change.
    this.session.announceControl(action, key);
    this.obeyLocally(action, key);
  }

  /** An attempt of this very process stops without waiting for the notification to come back. */
  private obeyLocally(action: ControlAction, key: string): void {
    if (action === 'resume') return;
    this.leases.get(key)?.controller.abort(controlError(key, action));
  }
}

function isControlAction(action: unknown): action is ControlAction {
  return action === 'pause' || action === 'resume' || action === 'cancel';
}

function assertControlAction(action: unknown): asserts action is ControlAction {
  if (!isControlAction(action))
    throw new CheckpointValidationError(
      messages.invalidState('action', action, ['pause', 'resume', 'cancel']),
    );
}
