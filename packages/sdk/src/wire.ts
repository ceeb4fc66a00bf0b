import { TrusteeError } from './errors';
import type { DepositWire, HealthWire, ListPageWire, PutResultWire } from './types';

/**
 * Shape checks of 2xx answers. The server is trusted to follow the contract, but a proxy or a
 * wrong URL can answer 200 with anything; failing here with PROTOCOL_ERROR beats a TypeError later.
 */

type Json = Record<string, unknown>;

function parseObject(body: string, node: string, what: string): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw protocolError(node, `${what} is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw protocolError(node, `${what} is not a JSON object`);
  }
  return parsed as Json;
}

function protocolError(node: string, why: string): TrusteeError {
  return new TrusteeError('PROTOCOL_ERROR', `unexpected answer from ${node}: ${why}`, { node });
}

function isVersion(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

export function parsePutResult(body: string, node: string): PutResultWire {
  const o = parseObject(body, node, 'put answer');
  if (typeof o.name !== 'string' || !isVersion(o.version))
    throw protocolError(node, 'put answer lacks name/version');
  return { name: o.name, version: o.version };
}

/**
 * Also checks the server answered for the name and (when one was asked) the version asked; the
 * envelope's additional data catches a relabelled value too, but raw values have none.
 */
export function parseDeposit(
  body: string,
  expectedName: string,
  node: string,
  expectedVersion?: number,
): DepositWire {
  const o = parseObject(body, node, 'deposit');
  if (o.name !== expectedName) throw protocolError(node, `asked for ${expectedName}, got ${String(o.name)}`);
  if (!isVersion(o.version) || typeof o.value !== 'string' || typeof o.createdAt !== 'string') {
    throw protocolError(node, 'deposit lacks version/value/createdAt');
  }
  if (expectedVersion !== undefined && o.version !== expectedVersion) {
    throw protocolError(
      node,
      `asked for ${expectedName} version ${expectedVersion}, got version ${o.version}`,
    );
  }
  const metadata = typeof o.metadata === 'object' && o.metadata !== null ? (o.metadata as Json) : null;
  return { name: o.name, version: o.version, value: o.value, metadata, createdAt: o.createdAt };
}

export function parseListPage(body: string, node: string): ListPageWire {
  const o = parseObject(body, node, 'list page');
  if (!Array.isArray(o.items)) throw protocolError(node, 'list page lacks items');
  const items = o.items.map((raw: unknown) => {
    const item = raw as Json;
    if (typeof item?.name !== 'string' || !isVersion(item.version))
      throw protocolError(node, 'list item lacks name/version');
    return { name: item.name, version: item.version, createdAt: String(item.createdAt) };
  });
  const nextCursor = typeof o.nextCursor === 'string' && o.nextCursor !== '' ? o.nextCursor : null;
  return { items, nextCursor };
}

/** Health bodies come with 200 and 503 alike; only `role` is required to route. */
export function parseHealth(body: string, node: string): HealthWire {
  const o = parseObject(body, node, 'health');
  const role = o.role === 'active' || o.role === 'passive' ? o.role : 'unknown';
  const replication = (
    typeof o.replication === 'object' && o.replication !== null ? o.replication : {}
  ) as Json;
  return {
    role,
    writable: o.writable === true,
    db: typeof o.db === 'string' ? o.db : 'unknown',
    replication: {
      state: typeof replication.state === 'string' ? replication.state : null,
      syncState: typeof replication.syncState === 'string' ? replication.syncState : null,
      lagBytes: typeof replication.lagBytes === 'number' ? replication.lagBytes : null,
      replayLagSeconds:
        typeof replication.replayLagSeconds === 'number' ? replication.replayLagSeconds : null,
    },
    version: typeof o.version === 'string' ? o.version : 'unknown',
  };
}
