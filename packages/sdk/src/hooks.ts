import type { TrusteeHooks, TrusteeLogger } from './types';

type HookName = keyof TrusteeHooks;
type HookEvent<K extends HookName> = Parameters<NonNullable<TrusteeHooks[K]>>[0];

export type Emit = <K extends HookName>(name: K, event: HookEvent<K>) => void;

/**
 * Wraps the caller's hooks so that instrumentation can never break a call: a throwing hook is
 * logged at warn and otherwise ignored, and so is an async hook whose promise rejects (left alone,
 * that rejection would be unhandled and end the process).
 */
export function createEmitter(hooks: TrusteeHooks | undefined, logger: TrusteeLogger | undefined): Emit {
  const report = (name: HookName, e: unknown): void => {
    try {
      logger?.warn({ hook: name, err: e }, 'trustee sdk hook threw');
    } catch {
      // A throwing logger must not break the call either.
    }
  };
  return (name, event) => {
    const hook = hooks?.[name] as ((e: typeof event) => unknown) | undefined;
    if (hook === undefined) return;
    try {
      const result = hook.call(hooks, event);
      if (isThenable(result)) result.then(undefined, (e: unknown) => report(name, e));
    } catch (e) {
      report(name, e);
    }
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
