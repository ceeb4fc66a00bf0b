import { listenFor, parseHostPort, standbyNameFor } from './bootstrap-db';

describe('parseHostPort', () => {
  it.each([
    ['kt02.example.com', { host: 'kt02.example.com', port: 11381 }],
    ['kt02.example.com:5433', { host: 'kt02.example.com', port: 5433 }],
    ['127.0.0.1:11382', { host: '127.0.0.1', port: 11382 }],
    ['[::1]:11382', { host: '::1', port: 11382 }],
    ['[fe80::1]', { host: 'fe80::1', port: 11381 }],
  ])('parses %s', (spec, expected) => {
    expect(parseHostPort(spec)).toEqual(expected);
  });

  it.each(['', 'a:b', 'host:99999', 'host:1:2'])('rejects %j with a message naming it', (spec) => {
    expect(() => parseHostPort(spec)).toThrow(/HOST\[:PORT\]|out of range/);
  });
});

describe('standbyNameFor', () => {
  it('is the same on both sides: the active from --slave HOST[:PORT], the passive from HOST and DB_PORT', () => {
    const { host, port } = parseHostPort('kt02.example.com');
    expect(standbyNameFor(host, port)).toBe('kt02_example_com');
    expect(standbyNameFor('kt02.example.com', 11381)).toBe('kt02_example_com');
  });

  it('keeps two local nodes apart by their port', () => {
    expect(standbyNameFor('localhost', 11382)).toBe('localhost_11382');
    expect(standbyNameFor('localhost', 11383)).not.toBe(standbyNameFor('localhost', 11382));
  });
});

describe('listenFor', () => {
  it('listens on loopback only when the peer is on this machine', () => {
    expect(listenFor('localhost')).toBe('127.0.0.1');
    expect(listenFor('127.0.0.2')).toBe('127.0.0.1');
    expect(listenFor(undefined)).toBe('127.0.0.1');
    expect(listenFor('kt02.example.com')).toBe('*');
  });
});
