import type { DenyListWatcher } from './auth/deny-list-watcher';
import type { SignPool } from './crypto/sign-pool';
import type { ClientAddressPolicy } from './http/client-address';
import type { DecoyRegistrations } from './orgs/decoy-registration';
import type { Db } from './db/pool';
import type { DepositQuotas } from './deposits/quotas';
import type { DepositVacuum } from './deposits/vacuum-after-destroy';
import type { WritePathOptions } from './db/write-path';
import type { KeyHierarchy } from './keys/key-hierarchy';
import type { HsmKeyHierarchy } from './keys/hsm-key-hierarchy';
import type { HsmStatus } from './keys/open-node-keys';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import type { NodeState } from './node/node-state';
import type { Identity } from './orgs/register-client';
import type { RateLimits } from './rate-limit';
import type { RefusalCounter } from './audit/audit-refusals';

/** Everything a request handler needs, built once by the server and passed down. */
export interface ServerContext {
  db: Db;
  keys: KeyHierarchy;
  /** Set when an HSM holds the KEK (keys is then this hierarchy). */
  hsm?: HsmKeyHierarchy;
  /** The last HSM operation's outcome (for /v1/health). */
  hsmStatus?: HsmStatus;
  write: WritePathOptions;
  identity: Identity;
  nodeState: NodeState;
  /** This node's deny list (clients revoked while the replicated state could not be written). */
  denyList?: DenyListWatcher;
  metrics: Metrics;
  limits: RateLimits;
  log: Logger;
  maxValueBytes: number;
  /** Clients awaiting approval allowed per organization (MAX_PENDING_CLIENTS_PER_ORG). */
  maxPendingClientsPerOrg: number;
  /** Per-client deposit quotas (QUOTA_* in keytrustee.conf). */
  depositQuotas: DepositQuotas;
  /** Clients allowed in an organization with an empty auth code (QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG). */
  maxClientsAutoApprovedOrg: number;
  /** Reclaims destroyed values' old row versions after a destroy (VACUUM, owner role, in the background). */
  depositVacuum: DepositVacuum;
  /** Worker threads signing client certificates (off the event loop). */
  signPool: SignPool;
  /** Answers for registrations naming an organization that does not exist. */
  decoys: DecoyRegistrations;
  /** Which address registration limits are charged to (TRUSTED_PROXIES, CLIENT_ADDRESS_HEADER). */
  clientAddress: ClientAddressPolicy;
  version: string;
  /** Refused registrations, authentications and writes, counted for the audit trail. */
  auditRefusals: RefusalCounter;
}
