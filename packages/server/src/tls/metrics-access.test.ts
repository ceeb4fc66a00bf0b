import { isLoopbackHost, parseListenAddress } from './listen-address';
import { apiMetricsAccess, isMetricsPath } from './metrics-access';

describe('METRICS_LISTEN', () => {
  it('takes HOST:PORT, [IPv6]:PORT or a bare port on loopback', () => {
    expect(parseListenAddress('127.0.0.1:9371')).toEqual({ host: '127.0.0.1', port: 9371 });
    expect(parseListenAddress('[::1]:9371')).toEqual({ host: '::1', port: 9371 });
    expect(parseListenAddress('monitor.example.com:9371')).toEqual({
      host: 'monitor.example.com',
      port: 9371,
    });
    expect(parseListenAddress('9371')).toEqual({ host: '127.0.0.1', port: 9371 });
    expect(parseListenAddress('0.0.0.0:0')).toEqual({ host: '0.0.0.0', port: 0 });
  });

  it('rejects what is not an address and a port', () => {
    for (const v of ['', '127.0.0.1', '::1:9371', 'http://127.0.0.1:9371', '127.0.0.1:99999', 'a b:1'])
      expect(() => parseListenAddress(v)).toThrow();
  });

  it('knows loopback addresses', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(isLoopbackHost('10.0.0.5')).toBe(false);
  });
});

describe('/metrics on the API port', () => {
  it('is open by default, client-cert only when required, and gone when moved to METRICS_LISTEN', () => {
    expect(apiMetricsAccess({ METRICS_REQUIRE_CLIENT_CERT: false })).toBe('open');
    expect(apiMetricsAccess({ METRICS_REQUIRE_CLIENT_CERT: true })).toBe('client-cert');
    expect(apiMetricsAccess({ METRICS_REQUIRE_CLIENT_CERT: false, METRICS_LISTEN: '9371' })).toBe(
      'elsewhere',
    );
    expect(apiMetricsAccess({ METRICS_REQUIRE_CLIENT_CERT: true, METRICS_LISTEN: '9371' })).toBe(
      'client-cert',
    );
  });

  it('is recognised in every spelling express routes to it', () => {
    for (const u of [
      '/metrics',
      '/metrics/',
      '/METRICS',
      '/Metrics?x=1',
      '/%6detrics',
      '//metrics',
      '/metrics#a',
    ])
      expect(isMetricsPath(u)).toBe(true);
    for (const u of ['/', '/metricsx', '/v1/metrics', '/metrics/x', '/%zz'])
      expect(isMetricsPath(u)).toBe(false);
  });
});
