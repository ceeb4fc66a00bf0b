import type { TrusteeHooks, TrusteeLogger } from './types';

type HookName = keyof TrusteeHooks;
type HookEvent<K extends HookName> = Parameters<NonNullable<TrusteeHooks[K]>>[0];

export type Emit = <K extends HookName>(name: K, event: HookEvent<K>) => void;

/**
 * Wraps the caller's hooks so that instrumentation can never break a call: a throwing hook is
 * logged at warn and otherwise ignored.
 */
export function createEmitter(hooks: TrusteeHooks | undefined, logger: TrusteeLogger | undefined): Emit {
  return (name, event) => {
    const hook = hooks?.[name] as ((e: typeof event) => void) | undefined;
    if (hook === undefined) return;
    try {
      hook.call(hooks, event);
    } catch (e) {
      logger?.warn({ hook: name, err: e }, 'trustee sdk hook threw');
    }
  };
}
