/**
 * Runs `fn`, which must throw an instance of `type`; returns that error for further checks
 * (code, message). Fails the test when `fn` returns or throws something else.
 */
export function thrownBy<E extends Error>(fn: () => unknown, type: abstract new (...args: never[]) => E): E {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(type);
    return e as E;
  }
  throw new Error(`expected a ${type.name}, but nothing was thrown`);
}
