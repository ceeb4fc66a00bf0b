import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports for the servers tests start come from below the kernel's ephemeral range, in a slice of
 * their own per jest worker. A port the kernel picked with listen(0) lies inside the ephemeral
 * range, where every outgoing connection of the run (thousands: HTTPS, PostgreSQL over TCP) also
 * takes its source port: between the pick and keytrusteed's or PostgreSQL's own bind, such a
 * connection, or another worker's pick, could take it (seen once with 3 workers: a keytrusteed
 * that never answered /v1/health). Below the range nothing takes a port by itself, and workers
 * never share a slice.
 */
const LOW = 20_000;
const SLICE = 1_500;
const SLICES = 8;

function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 0;
  }
}

/** Enough room below the ephemeral range for every slice; else the kernel's own pick. */
const usable = ephemeralLow() >= LOW + SLICE * SLICES;
const slot = Number(process.env.JEST_WORKER_ID ?? 0) % SLICES;
const sliceStart = LOW + slot * SLICE;
/** A random start inside the slice: files that run one after the other in a worker rarely reuse a port. */
let offset = Math.floor(Math.random() * SLICE);

function listenOnce(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : undefined;
      srv.close(() => resolve(got));
    });
  });
}

/** A TCP port free on 127.0.0.1 right now, and not one the kernel hands out by itself. */
export async function freePort(): Promise<number> {
  if (usable) {
    for (let tries = 0; tries < SLICE; tries++) {
      const port = sliceStart + (offset++ % SLICE);
      if ((await listenOnce(port)) === port) return port;
    }
  }
  const port = await listenOnce(0);
  if (port === undefined) throw new Error('no free TCP port on 127.0.0.1');
  return port;
}
