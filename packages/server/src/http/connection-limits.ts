/**
 * Bounds on what a peer can hold open before it is even a client (issue 10, finding 6): the TLS
 * handshake, the request headers and the whole request are timed; one source address cannot
 * hold more than a set number of connections (a flood from one host leaves room for the others).
 */
import type { Server } from 'node:https';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  /** TLS handshake must finish within this, ms. */
  handshakeTimeoutMs: number;
  /** Request headers must arrive within this, ms. */
  headersTimeoutMs: number;
  /** A whole request (headers + body) must arrive within this, ms. */
  requestTimeoutMs: number;
  /** Open connections allowed per source address. */
  maxConnectionsPerSource: number;
}

/** Counts connections per source address; `admit` says whether one more is allowed. */
export function createSourceCounter(max: number) {
  const open = new Map<string, number>();
  return {
    admit(address: string): boolean {
      const n = open.get(address) ?? 0;
      if (n >= max) return false;
      open.set(address, n + 1);
      return true;
    },
    release(address: string): void {
      const n = (open.get(address) ?? 1) - 1;
      if (n <= 0) open.delete(address);
      else open.set(address, n);
    },
    count(address: string): number {
      return open.get(address) ?? 0;
    },
  };
}

/** Applies the limits to an https server; `onRefused` is told about each refused connection. */
export function applyConnectionLimits(
  server: Server,
  limits: ConnectionLimits,
  onRefused?: (address: string) => void,
): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  const sources = createSourceCounter(limits.maxConnectionsPerSource);
  // 'connection' is the raw TCP socket, before any TLS: refuse early, cheaply.
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '?';
    if (!sources.admit(address)) {
      onRefused?.(address);
      socket.destroy();
      return;
    }
    socket.once('close', () => sources.release(address));
  });
}
