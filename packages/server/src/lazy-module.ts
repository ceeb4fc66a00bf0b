/**
 * A module loaded on first use instead of at import: the CLIs and keytrusteed start by loading
 * everything their imports name (≈ 770 files, 5 MB of JavaScript for keytrusteed), and most runs
 * never send mail, write or read a backup, issue a certificate or use Redis. Property reads on the returned
 * object load the module once and read from it.
 */
export function lazyModule<T extends object>(load: () => T): T {
  let mod: T | undefined;
  return new Proxy({} as T, {
    get: (_target, key) => Reflect.get((mod ??= load()), key) as unknown,
  });
}
