// Usage example of @trustee/sdk (also shown in README.md; type-checked by src/examples.test.ts).
import { TrusteeClient, TrusteeError, type TrusteeHooks } from '@trustee/sdk';

/** Metrics hooks: count retries/failovers, e.g. into prom-client counters in a real app. */
const counters = { retries: 0, failovers: 0, staleReads: 0 };
const hooks: TrusteeHooks = {
  onRetry: () => void (counters.retries += 1),
  onFailover: (e) => {
    counters.failovers += 1;
    console.warn(`trustee: ${e.operation} failed over from ${e.from} to ${e.to} (${e.error.code})`);
  },
  onCacheHit: (e) => void (e.freshness === 'stale' ? (counters.staleReads += 1) : undefined),
};

export async function main(configPath: string): Promise<void> {
  // Once per machine: `ktclient register --server https://kt1:11371,https://kt2:11371 --org demo --auth CODE`
  // (or TrusteeClient.register({...})) writes the config file, mode 0600.
  const client = TrusteeClient.fromConfigFile(configPath, {
    timeoutMs: 2_000, // per attempt
    deadlineMs: 10_000, // whole call, retries and failover included
    cache: { ttlMs: 5_000, serveStaleOnError: true, maxStaleMs: 15 * 60_000 },
    hooks,
  });
  try {
    // Encrypted client-side (AES-256-GCM, name-bound) before it leaves the process.
    const { version, idempotencyKey } = await client.put('hdfs-master-key', Buffer.from('0123456789abcdef'), {
      metadata: { owner: 'kms' }, // metadata is NOT encrypted
    });
    console.log(`stored version ${version} (idempotency key ${idempotencyKey})`);

    const latest = await client.get('hdfs-master-key');
    console.log(latest.version, latest.value.length, latest.source);

    for await (const item of client.list({ prefix: 'hdfs-' })) console.log(item.name, item.version);

    const status = await client.status();
    console.log(`active node: ${status.active ?? 'none'}`);
  } catch (e) {
    if (e instanceof TrusteeError && e.code === 'PASSIVE_UNAVAILABLE') {
      console.error('writes need both nodes; reads still work:', e.message);
    } else if (e instanceof TrusteeError && e.code === 'WRITE_IN_DOUBT') {
      console.error(`retry later with idempotencyKey ${String(e.details.idempotencyKey)}`);
    } else {
      throw e;
    }
  } finally {
    client.close();
  }
}

if (require.main === module) {
  main(process.argv[2] ?? `${process.env.HOME}/.keytrustee/keytrustee.conf`).catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
