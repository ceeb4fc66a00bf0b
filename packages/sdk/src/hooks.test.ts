import { createEmitter } from './hooks';
import type { TrusteeLogger } from './types';

function logger(): TrusteeLogger & { warnings: unknown[] } {
  const warnings: unknown[] = [];
  return {
    warnings,
    debug: () => undefined,
    info: () => undefined,
    warn: (obj) => warnings.push(obj),
    error: () => undefined,
  };
}

describe('createEmitter', () => {
  it('swallows and logs a throwing hook', () => {
    const log = logger();
    const emit = createEmitter(
      {
        onRetry: () => {
          throw new Error('metrics down');
        },
      },
      log,
    );
    expect(() => emit('onCacheMiss', { name: 'a' })).not.toThrow();
    expect(() =>
      emit('onRetry', { operation: 'get', attempt: 0, delayMs: 0, error: undefined as never }),
    ).not.toThrow();
    expect(log.warnings).toEqual([expect.objectContaining({ hook: 'onRetry' })]);
  });

  it('does not break the call when the logger itself throws while reporting a hook', () => {
    const emit = createEmitter(
      {
        onCacheMiss: () => {
          throw new Error('hook');
        },
      },
      {
        ...logger(),
        warn: () => {
          throw new Error('logger');
        },
      },
    );
    expect(() => emit('onCacheMiss', { name: 'a' })).not.toThrow();
  });

  it('catches the rejection of an async hook instead of leaving it unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => {
      unhandled.push(e);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      const log = logger();
      const hooks = {
        // Typed as returning void, but an async function is assignable and common in practice.
        onCacheMiss: async (): Promise<void> => {
          await Promise.resolve();
          throw new Error('async exporter failed');
        },
      };
      createEmitter(hooks, log)('onCacheMiss', { name: 'a' });
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
      expect(log.warnings).toEqual([expect.objectContaining({ hook: 'onCacheMiss' })]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
