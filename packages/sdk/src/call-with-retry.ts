import { setTimeout as sleep } from 'node:timers/promises';
import type { Endpoint, EndpointSet } from './endpoints';
import { TrusteeError, toTrusteeError } from './errors';
import type { Emit } from './hooks';
import { Deadline } from './deadline';
import { canFailOver, nextRetryStep, type RetryOptions } from './retry';
import type { TrusteeLogger } from './types';

/** What one attempt gets: the node, its time budget and the caller's signal. */
export interface Attempt {
  node: Endpoint;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface CallContext {
  endpoints: EndpointSet;
  retry: RetryOptions;
  timeoutMs: number;
  emit: Emit;
  logger?: TrusteeLogger;
  /** Finds the active node (used by writes); bounded by the given timeout. */
  probeActive: (node: Endpoint, timeoutMs: number, signal?: AbortSignal) => Promise<boolean>;
  now?: () => number;
}

export interface CallSpec<T> {
  /** Name for hooks/logs, e.g. 'put'. */
  operation: string;
  /** 'write' goes to the active node only; 'read' tries the preferred node, then the others. */
  kind: 'read' | 'write';
  deadlineMs: number;
  signal?: AbortSignal;
  attempt: (a: Attempt) => Promise<T>;
  /** Extra veto on retrying, for requests without an Idempotency-Key (registration). */
  canRetry?: (e: TrusteeError) => boolean;
}

/**
 * Runs one SDK call: node selection, failover, retries with backoff, one overall deadline.
 * Writes are safe to repeat because the caller put the same Idempotency-Key in every attempt.
 */
export async function callWithRetry<T>(ctx: CallContext, spec: CallSpec<T>): Promise<T> {
  const deadline = new Deadline(spec.deadlineMs, ctx.now);
  let lastError: TrusteeError | undefined;
  const seen: SeenErrors = {};
  let followedHint = false;
  for (let retry = 0; ; retry += 1) {
    const result = await runPass(ctx, spec, deadline, lastError, seen);
    if (result.ok) return result.value;
    lastError = result.error;
    remember(seen, lastError);
    const step = nextRetryStep({
      error: lastError,
      retry,
      policy: ctx.retry,
      kind: spec.kind,
      remainingMs: deadline.remainingMs(),
      attemptTimeoutMs: ctx.timeoutMs,
      hintToFollow: !followedHint && isFreshHint(ctx, lastError),
      vetoed: spec.canRetry?.(lastError) === false,
    });
    if (step.action === 'stop') throw lastError;
    if (step.action === 'deadline') throw deadlineError(spec, lastError, seen);
    followedHint = step.followsHint;
    const { delayMs } = step;
    ctx.emit('onRetry', { operation: spec.operation, attempt: retry, delayMs, error: lastError });
    ctx.logger?.debug(
      { operation: spec.operation, attempt: retry, delayMs, code: lastError.code },
      'trustee sdk retrying',
    );
    await sleepOrAbort(delayMs, spec.signal);
  }
}

/** True when `e` is a NOT_ACTIVE whose hint named one of our nodes other than the one answering. */
function isFreshHint(ctx: CallContext, e: TrusteeError): boolean {
  const active = ctx.endpoints.active;
  return e.code === 'NOT_ACTIVE' && active !== undefined && active.url !== e.node;
}

type PassResult<T> = { ok: true; value: T } | { ok: false; error: TrusteeError };

/** One pass: a write tries the active node; a read tries each node in preference order. */
async function runPass<T>(
  ctx: CallContext,
  spec: CallSpec<T>,
  deadline: Deadline,
  previous: TrusteeError | undefined,
  seen: SeenErrors,
): Promise<PassResult<T>> {
  let nodes: Endpoint[];
  try {
    nodes =
      spec.kind === 'write'
        ? [await findActive(ctx, spec, deadline, previous, seen)]
        : ctx.endpoints.readOrder();
  } catch (e) {
    return { ok: false, error: checkFatal(toTrusteeError(e), spec, deadline, seen) };
  }
  let error: TrusteeError | undefined;
  const failures: TrusteeError[] = [];
  for (const [index, node] of nodes.entries()) {
    if (error !== undefined) {
      ctx.emit('onFailover', { operation: spec.operation, from: nodes[index - 1].url, to: node.url, error });
    }
    try {
      const lastSeen = error ?? previous;
      if (deadline.isExpired()) throw deadlineError(spec, lastSeen, seen);
      // The budget is taken again when the request starts: a half-open breaker may have held this
      // call while another one tested the node.
      const value = await ctx.endpoints.run(node, () => {
        const timeoutMs = Math.min(ctx.timeoutMs, deadline.remainingMs());
        if (timeoutMs <= 0) throw deadlineError(spec, lastSeen, seen);
        return spec.attempt({ node, timeoutMs, signal: spec.signal });
      });
      ctx.endpoints.markGood(node);
      return { ok: true, value };
    } catch (e) {
      const raw = toTrusteeError(e, node.url);
      noteWriteFailure(ctx, spec, raw);
      error = checkFatal(inDoubtIfSent(spec, raw), spec, deadline, seen);
      failures.push(error);
      if (spec.kind === 'write' || !canFailOver(error)) break;
    }
  }
  if (failures.length > 1) error = everyNodeFailed(failures);
  return { ok: false, error: error ?? new TrusteeError('UNAVAILABLE', 'no endpoint to try') };
}

/** When every node failed, say so and name each node's reason; the code stays the last one's. */
function everyNodeFailed(failures: TrusteeError[]): TrusteeError {
  const last = failures[failures.length - 1];
  const reasons = failures.map((f) => `${f.node ?? '?'}: ${f.code}`).join('; ');
  return new TrusteeError(
    last.code,
    `no node could serve the request (${reasons}); last error: ${last.message}`,
    {
      node: last.node,
      status: last.status,
      retryAfterMs: last.retryAfterMs,
      details: last.details,
      cause: last,
    },
  );
}

function findActive<T>(
  ctx: CallContext,
  spec: CallSpec<T>,
  deadline: Deadline,
  previous: TrusteeError | undefined,
  seen: SeenErrors,
): Promise<Endpoint> {
  const timeoutMs = Math.min(ctx.timeoutMs, deadline.remainingMs());
  if (timeoutMs <= 0) throw deadlineError(spec, previous, seen);
  return ctx.endpoints.activeNode((node) => ctx.probeActive(node, timeoutMs, spec.signal));
}

/**
 * A write whose request was sent and then timed out or lost its connection may be committed:
 * it is WRITE_IN_DOUBT (retried with the same Idempotency-Key until the deadline, and reported
 * as such if nothing resolves it), never a plain TIMEOUT or DEADLINE_EXCEEDED. The node's breaker
 * has already counted the original failure.
 */
function inDoubtIfSent<T>(spec: CallSpec<T>, e: TrusteeError): TrusteeError {
  if (spec.kind !== 'write' || e.details.requestSent !== true) return e;
  if (e.code !== 'TIMEOUT' && e.code !== 'NETWORK_ERROR') return e;
  return new TrusteeError(
    'WRITE_IN_DOUBT',
    `${spec.operation} was sent to ${e.node ?? 'the active node'} but no answer came (${e.code}: ${e.message}); the write may be committed: retry with the same idempotencyKey to resolve it`,
    { node: e.node, details: { ...e.details }, cause: e },
  );
}

/** What a failed write teaches us about the active node. */
function noteWriteFailure<T>(ctx: CallContext, spec: CallSpec<T>, error: TrusteeError): void {
  if (spec.kind !== 'write') return;
  if (error.code === 'NOT_ACTIVE') ctx.endpoints.applyActiveHint(error.details.active);
  else if (error.isNodeFailure || error.code === 'CIRCUIT_OPEN') ctx.endpoints.setActive(null);
}

/** An abort is final; a timeout that hit the overall deadline becomes DEADLINE_EXCEEDED. */
function checkFatal<T>(
  error: TrusteeError,
  spec: CallSpec<T>,
  deadline: Deadline,
  seen: SeenErrors,
): TrusteeError {
  if (error.code === 'ABORTED' || error.code === 'DEADLINE_EXCEEDED') throw error;
  if (deadline.isExpired()) throw deadlineError(spec, error, seen);
  return error;
}

/**
 * Errors of earlier attempts that must not be hidden by the last one: a write once answered
 * WRITE_IN_DOUBT may be committed whatever later attempts said, and an attempt cut by the
 * deadline says less than the PASSIVE_UNAVAILABLE before it.
 */
interface SeenErrors {
  inDoubt?: TrusteeError;
  passiveUnavailable?: TrusteeError;
}

function remember(seen: SeenErrors, e: TrusteeError): void {
  if (e.code === 'WRITE_IN_DOUBT') seen.inDoubt = e;
  if (e.code === 'PASSIVE_UNAVAILABLE') seen.passiveUnavailable = e;
}

function mostTelling(last: TrusteeError | undefined, seen: SeenErrors): TrusteeError | undefined {
  if (seen.inDoubt) return last?.code === 'WRITE_IN_DOUBT' ? last : seen.inDoubt;
  if (last?.code === 'PASSIVE_UNAVAILABLE' || !seen.passiveUnavailable) return last;
  return last === undefined || last.isNodeFailure || last.code === 'CIRCUIT_OPEN'
    ? seen.passiveUnavailable
    : last;
}

/**
 * The error thrown when the deadline ends the retries. PASSIVE_UNAVAILABLE and WRITE_IN_DOUBT keep
 * their code (the caller must act on them differently); anything else becomes DEADLINE_EXCEEDED.
 */
function deadlineError<T>(
  spec: CallSpec<T>,
  lastSeen: TrusteeError | undefined,
  seen: SeenErrors = {},
): TrusteeError {
  const last = mostTelling(lastSeen, seen);
  const waited = `${spec.operation} gave up after its ${spec.deadlineMs} ms deadline`;
  if (last?.code === 'PASSIVE_UNAVAILABLE') {
    return new TrusteeError(
      'PASSIVE_UNAVAILABLE',
      `writes need both nodes: the passive node is not replicating, so the active refuses writes (${waited})`,
      { node: last.node, status: last.status, details: last.details, cause: last },
    );
  }
  if (last?.code === 'WRITE_IN_DOUBT') {
    return new TrusteeError(
      'WRITE_IN_DOUBT',
      `${waited}; the write may be committed on the active but is not confirmed on the passive: retry with the same idempotencyKey to resolve it`,
      { node: last.node, status: last.status, details: last.details, cause: last },
    );
  }
  const lastText = last === undefined ? '' : ` (last error: ${last.code}: ${last.message})`;
  return new TrusteeError('DEADLINE_EXCEEDED', `${waited}${lastText}`, { node: last?.node, cause: last });
}

async function sleepOrAbort(ms: number, signal: AbortSignal | undefined): Promise<void> {
  // Checked even without a wait: an abort during discovery surfaces as UNAVAILABLE, not ABORTED.
  if (signal?.aborted)
    throw new TrusteeError('ABORTED', 'call aborted by the caller', { cause: signal.reason });
  if (ms <= 0) return;
  try {
    await sleep(ms, undefined, { signal });
  } catch (e) {
    throw new TrusteeError('ABORTED', 'call aborted by the caller', { cause: e });
  }
}
