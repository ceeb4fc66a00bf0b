import { parseDuration } from './failover';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

describe('parseDuration (allow-single-node-writes --for)', () => {
  it.each([
    ['90s', 90 * S],
    ['1s', S],
    ['30m', 30 * M],
    ['2h', 2 * H],
    ['1d', D],
    ['7d', 7 * D],
    ['168h', 7 * D],
    ['604800s', 7 * D],
    [' 2h ', 2 * H],
  ])('reads %j as the milliseconds it names', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['0m', '0s', '8d', '169h', '604801s'])('refuses %j as outside 1s..7d, naming it', (text) => {
    expect(() => parseDuration(text)).toThrow(new RegExp(`duration ${text} must be between 1s and 7d`));
  });

  it.each(['', 'abc', '1w', '-1h', '1.5h', '2 h', 'h', '10', '1H', '1d2h'])(
    'refuses %j as not a duration, with an example of one',
    (text) => {
      expect(() => parseDuration(text)).toThrow(/is not a duration such as 30m, 2h or 1d/);
    },
  );
});
