import { resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { absolutePath, parsePort, parseSeconds } from './common';
import { thrownBy } from '../../test/support/thrown';

const invalidArgument = (fn: () => unknown): InvalidArgumentError => thrownBy(fn, InvalidArgumentError);

describe('parsePort', () => {
  it.each([
    ['0', 0],
    ['1', 1],
    ['11371', 11371],
    ['65535', 65535],
    ['00080', 80],
  ])('reads %j as %i', (v, port) => {
    expect(parsePort(v)).toBe(port);
  });

  it.each(['', '65536', '99999', '123456', '-1', '+80', '80.0', '1e3', ' 80', '80 ', 'http', '0x50'])(
    'refuses %j with the accepted range',
    (v) => {
      expect(invalidArgument(() => parsePort(v)).message).toBe('expected a port number between 0 and 65535');
    },
  );
});

describe('parseSeconds', () => {
  it.each([
    ['1', 1],
    ['0.5', 0.5],
    ['30', 30],
    ['3600.25', 3600.25],
  ])('reads %j as %d', (v, s) => {
    expect(parseSeconds(v)).toBe(s);
  });

  it.each(['', '0', '0.0', '-1', '.5', '1.', '1e3', 'Infinity', 'NaN', '5s', ' 5', '1,5'])(
    'refuses %j as not a positive number of seconds',
    (v) => {
      expect(invalidArgument(() => parseSeconds(v)).message).toBe('expected a positive number of seconds');
    },
  );
});

describe('absolutePath', () => {
  it('resolves a relative path against the working directory and keeps an absolute one', () => {
    expect(absolutePath('confdir')).toBe(resolve(process.cwd(), 'confdir'));
    expect(absolutePath('./a/../b')).toBe(resolve(process.cwd(), 'b'));
    expect(absolutePath('/var/lib/keytrustee/.keytrustee')).toBe('/var/lib/keytrustee/.keytrustee');
    expect(absolutePath('/tmp//x/')).toBe('/tmp/x');
  });

  it.each(['', '   ', '\t'])('refuses the blank path %j', (v) => {
    expect(invalidArgument(() => absolutePath(v)).message).toBe('expected a path');
  });
});
