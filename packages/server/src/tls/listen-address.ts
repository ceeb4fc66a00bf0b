export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * METRICS_LISTEN: `HOST:PORT`, `[IPv6]:PORT`, or a bare `PORT` (loopback, 127.0.0.1). Port 0
 * means any free port (tests). Throws with what was expected.
 */
export function parseListenAddress(value: string): ListenAddress {
  const s = value.trim();
  const m = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):)?(\d{1,5})$/.exec(s);
  if (!m) throw new Error(`"${value}" is not HOST:PORT (e.g. 127.0.0.1:9371 or [::1]:9371)`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port ${port} out of range in "${value}"`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

/** True for an address only this host can reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
