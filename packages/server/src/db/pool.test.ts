import { AppError } from '../errors';
import { isRequestAbandoned, requestAbandoned } from './pool';

describe('requestAbandoned / isRequestAbandoned', () => {
  it('makes an UNAVAILABLE saying nothing was written, caused by the signal’s reason', () => {
    const ac = new AbortController();
    ac.abort(new Error('socket closed'));
    const err = requestAbandoned(ac.signal);
    expect(err).toBeInstanceOf(AppError);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toBe('the client went away; the request was abandoned before any write');
    expect(err.cause).toBe(ac.signal.reason);
  });

  it('recognises only the error made for this request’s aborted signal', () => {
    const ac = new AbortController();
    ac.abort();
    const err = requestAbandoned(ac.signal);
    expect(isRequestAbandoned(err, ac.signal)).toBe(true);

    const other = new AbortController();
    other.abort();
    expect(isRequestAbandoned(err, other.signal)).toBe(false);
    expect(isRequestAbandoned(requestAbandoned(other.signal), ac.signal)).toBe(false);
    expect(isRequestAbandoned(err, undefined)).toBe(false);
    expect(isRequestAbandoned(new AppError('UNAVAILABLE', 'x', { cause: ac.signal.reason }), ac.signal)).toBe(
      true,
    );
    expect(isRequestAbandoned(new Error('x', { cause: ac.signal.reason }), ac.signal)).toBe(false);
    expect(isRequestAbandoned(new AppError('UNAVAILABLE', 'db down'), ac.signal)).toBe(false);
  });

  it('does not take an error for abandonment while the signal has not fired', () => {
    const ac = new AbortController();
    const err = new AppError('UNAVAILABLE', 'x', { cause: ac.signal.reason });
    expect(ac.signal.reason).toBeUndefined();
    expect(isRequestAbandoned(err, ac.signal)).toBe(false);
  });
});
