import { createSourceCounter } from './connection-limits';

describe('per-source connection counter', () => {
  it('admits up to the cap per address and again after a release', () => {
    const c = createSourceCounter(2);
    expect(c.admit('10.0.0.1')).toBe(true);
    expect(c.admit('10.0.0.1')).toBe(true);
    expect(c.admit('10.0.0.1')).toBe(false);
    expect(c.admit('10.0.0.2')).toBe(true);
    c.release('10.0.0.1');
    expect(c.count('10.0.0.1')).toBe(1);
    expect(c.admit('10.0.0.1')).toBe(true);
  });

  it('forgets an address with no open connection', () => {
    const c = createSourceCounter(1);
    c.admit('a');
    c.release('a');
    expect(c.count('a')).toBe(0);
    c.release('a');
    expect(c.count('a')).toBe(0);
  });
});
