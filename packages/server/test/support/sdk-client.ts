import { join } from 'node:path';
import { TrusteeClient, type RegistrationResult } from '@trustee/sdk';
import type { TestCluster } from './cluster';
import { makeTempDir } from './temp-dir';

export interface RegisteredSdkClient {
  /** Temp dir holding the config file (the caller removes it). */
  dir: string;
  configPath: string;
  registration: RegistrationResult;
}

/**
 * Registers through the SDK itself against both nodes (RSA 2048 to keep tests quick), which
 * writes a 0600 config file into a fresh temp dir.
 */
export async function registerSdkClient(
  cluster: TestCluster,
  prefix = 'trustee-sdk-',
): Promise<RegisteredSdkClient> {
  const dir = makeTempDir(prefix);
  const configPath = join(dir, 'keytrustee.conf');
  const registration = await TrusteeClient.register({
    servers: [cluster.a.url, cluster.b.url],
    org: cluster.org,
    authCode: cluster.authCode,
    configPath,
    skipSslCheck: true,
    keyBits: 2048,
  });
  return { dir, configPath, registration };
}
