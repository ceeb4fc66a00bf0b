import type https from 'node:https';
import {
  BrokenCircuitError,
  CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
} from 'cockatiel';
import { TrusteeError, isTrusteeError } from './errors';
import type { Emit } from './hooks';
import { createAgent, type AgentOptions } from './http';
import { SECOND } from './retry';
import type { BreakerEvent, BreakerOptions } from './types';

export const DEFAULT_BREAKER: BreakerOptions = { threshold: 5, halfOpenAfterMs: 10 * SECOND };

/** One node: its base URL (origin), keep-alive agent and circuit breaker. */
export interface Endpoint {
  readonly url: string;
  readonly agent: https.Agent;
  readonly breaker: CircuitBreakerPolicy;
}

/** Canonical form used to compare URLs (a NOT_ACTIVE hint against our endpoints). */
export function normalizeEndpoint(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TrusteeError('CONFIG_INVALID', `endpoint ${JSON.stringify(raw)} is not a URL`);
  }
  if (url.protocol !== 'https:') {
    throw new TrusteeError(
      'CONFIG_INVALID',
      `endpoint ${raw} must use https:// (the API is mutual TLS only)`,
    );
  }
  return url.origin;
}

function breakerStateName(state: CircuitState): BreakerEvent['state'] {
  if (state === CircuitState.Closed) return 'closed';
  if (state === CircuitState.HalfOpen) return 'half-open';
  return 'open';
}

/**
 * The nodes and what the SDK believes about them: which is active (writes), which answered last
 * (reads prefer it), and each node's breaker. Holds no HTTP logic; discovery is passed a probe.
 */
export class EndpointSet {
  readonly nodes: readonly Endpoint[];
  private activeUrl: string | null = null;
  private preferredUrl: string;
  private discovery: Promise<Endpoint> | undefined;

  constructor(
    urls: string[],
    tls: AgentOptions,
    breaker: BreakerOptions,
    private readonly emit: Emit,
  ) {
    const unique = [...new Set(urls.map(normalizeEndpoint))];
    if (unique.length === 0) throw new TrusteeError('CONFIG_INVALID', 'at least one endpoint is required');
    this.nodes = unique.map((url) => this.createEndpoint(url, tls, breaker));
    this.preferredUrl = unique[0];
  }

  get active(): Endpoint | undefined {
    return this.nodes.find((n) => n.url === this.activeUrl);
  }

  /** Nodes for one read pass: the last good node first, nodes with an open breaker last. */
  readOrder(): Endpoint[] {
    const rank = (n: Endpoint): number =>
      (n.breaker.state === CircuitState.Open ? 2 : 0) + (n.url === this.preferredUrl ? 0 : 1);
    return [...this.nodes].sort((a, b) => rank(a) - rank(b));
  }

  markGood(node: Endpoint): void {
    this.preferredUrl = node.url;
  }

  setActive(url: string | null): void {
    if (url === this.activeUrl) return;
    this.emit('onActiveChange', { previous: this.activeUrl, active: url });
    this.activeUrl = url;
  }

  /**
   * Applies the `active` field of a NOT_ACTIVE answer. Only one of our own endpoints is accepted:
   * the list given by the operator stays the trust boundary.
   * @returns true when the hint named a known endpoint (retry there at once).
   */
  applyActiveHint(hint: unknown): boolean {
    let url: string | undefined;
    try {
      url = typeof hint === 'string' ? normalizeEndpoint(hint) : undefined;
    } catch {
      url = undefined;
    }
    const known = url !== undefined && this.nodes.some((n) => n.url === url);
    this.setActive(known && url !== undefined ? url : null);
    return known;
  }

  /**
   * The active node, discovering it with `probe` when unknown. Concurrent callers share one
   * discovery. The first node whose probe says 'active' wins; slower probes are not awaited.
   */
  async activeNode(probe: (node: Endpoint) => Promise<boolean>): Promise<Endpoint> {
    const known = this.active;
    if (known !== undefined) return known;
    this.discovery ??= this.discover(probe).finally(() => {
      this.discovery = undefined;
    });
    return this.discovery;
  }

  /** Runs `fn` through the node's breaker; an open breaker surfaces as CIRCUIT_OPEN. */
  async run<T>(node: Endpoint, fn: () => Promise<T>): Promise<T> {
    try {
      return await node.breaker.execute(fn);
    } catch (e) {
      if (e instanceof BrokenCircuitError) {
        throw new TrusteeError(
          'CIRCUIT_OPEN',
          `circuit breaker of ${node.url} is open after repeated failures`,
          {
            node: node.url,
            cause: e,
          },
        );
      }
      throw e;
    }
  }

  breakerState(node: Endpoint): BreakerEvent['state'] {
    return breakerStateName(node.breaker.state);
  }

  close(): void {
    for (const node of this.nodes) node.agent.destroy();
  }

  private async discover(probe: (node: Endpoint) => Promise<boolean>): Promise<Endpoint> {
    const failures: string[] = [];
    let tlsFailure: TrusteeError | undefined;
    const winner = await new Promise<Endpoint | undefined>((resolve) => {
      let pending = this.nodes.length;
      for (const node of this.nodes) {
        probe(node)
          .then((isActive) => {
            if (isActive) resolve(node);
            else failures.push(`${node.url}: not active`);
          })
          .catch((e: unknown) => {
            if (isTrusteeError(e) && e.code === 'TLS_ERROR') tlsFailure = e;
            failures.push(`${node.url}: ${isTrusteeError(e) ? e.code : String(e)}`);
          })
          .finally(() => {
            pending -= 1;
            if (pending === 0) resolve(undefined);
          });
      }
    });
    if (winner === undefined && tlsFailure) {
      // Not an outage: this client does not trust the server certificate. Say how to fix it.
      throw new TrusteeError(
        'TLS_ERROR',
        `${tlsFailure.message}; give the node certificates (or their CA) with --ca / the "ca" option, ` +
          'or (not recommended) skip the check with --skip-ssl-check',
        { node: tlsFailure.node, cause: tlsFailure, details: { discovery: failures } },
      );
    }
    if (winner === undefined) {
      throw new TrusteeError('UNAVAILABLE', `no active node found (${failures.join('; ')})`, {
        details: { discovery: failures },
      });
    }
    this.setActive(winner.url);
    return winner;
  }

  private createEndpoint(url: string, tls: AgentOptions, options: BreakerOptions): Endpoint {
    // cockatiel fits here: a consecutive-failure breaker with half-open probing. Only node-level
    // failures count (network, timeout, 5xx); a 404 or NOT_ACTIVE says the node is healthy.
    const breaker = circuitBreaker(
      handleWhen((e) => isTrusteeError(e) && e.isNodeFailure),
      { halfOpenAfter: options.halfOpenAfterMs, breaker: new ConsecutiveBreaker(options.threshold) },
    );
    breaker.onStateChange((state) =>
      this.emit('onBreakerStateChange', { node: url, state: breakerStateName(state) }),
    );
    return { url, agent: createAgent(tls), breaker };
  }
}
