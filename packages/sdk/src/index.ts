export {
  TrusteeClient,
  DEFAULT_DEADLINE_MS,
  DEFAULT_TIMEOUT_MS,
  registerClient,
  type Deposit,
  type RegistrationResult,
} from './client';
export { clientFingerprint, createCsr, type RegisterOptions } from './register';
export {
  TrusteeError,
  isTrusteeError,
  errorFromResponse,
  parseRetryAfter,
  toTrusteeError,
  SERVER_ERROR_STATUS,
  INTEGRITY_REASON,
  type ErrorCode,
  type ServerErrorCode,
  type SdkErrorCode,
  type TrusteeErrorOptions,
} from './errors';
export { shouldRetry, retryDelayMs, DEFAULT_RETRY, SECOND, MINUTE, type RetryOptions } from './retry';
export { DepositCache, DEFAULT_CACHE, type CacheOptions, type CacheLookup } from './cache';
export { DEFAULT_BREAKER } from './endpoints';
export {
  encryptValue,
  decryptValue,
  openEnvelope,
  isEnvelope,
  ENVELOPE_MAGIC,
  ENVELOPE_VERSION,
  ENVELOPE_VERSION_NAME_ONLY,
  type OpenedEnvelope,
  ENVELOPE_OVERHEAD,
  DATA_KEY_LENGTH,
} from './envelope';
export {
  generateDataKey,
  wrapDataKey,
  unwrapDataKey,
  DATA_KEY_WRAP_ALG,
  type WrappedDataKey,
} from './data-key';
export {
  readConfigFile,
  writeConfigFile,
  defaultConfigPath,
  optionsFromConfig,
  CONFIG_PATH_ENV,
  type ClientConfigFile,
} from './config-file';
export { isValidName, assertValidName, MAX_NAME_LENGTH } from './names';
export {
  KeyProvider,
  parseVersionName,
  DEFAULT_CIPHER,
  KEY_MATERIAL_PREFIX,
  KEY_METADATA_PREFIX,
  MAX_KEY_NAME_LENGTH,
  MAX_EEK_BATCH,
  type CreateKeyOptions,
  type EncryptedKeyVersion,
  type KeyMetadata,
  type KeyProviderOptions,
  type KeyVersion,
} from './kms/key-provider';
export { EdekQueue, DEFAULT_EDEK_CACHE, type EdekCacheOptions, type EdekQueueStats } from './kms/edek-queue';
export {
  flipIv,
  encryptKeyMaterial,
  decryptKeyMaterial,
  EEK_VERSION_NAME,
  EK_VERSION_NAME,
  EEK_IV_LENGTH,
} from './kms/eek';
export type {
  ActiveChangeEvent,
  BreakerEvent,
  BreakerOptions,
  CacheHitEvent,
  CallOptions,
  ClientState,
  ClusterStatus,
  DeleteOptions,
  DepositListItem,
  DepositListPage,
  DepositValue,
  DepositWire,
  EncryptionMode,
  EndpointStatus,
  FailoverEvent,
  GetOptions,
  HealthWire,
  ListItemWire,
  ListOptions,
  ListPageOptions,
  ListPageWire,
  NodeRole,
  PutOptions,
  PutResult,
  PutResultWire,
  RegisterRequestWire,
  RegisterResponseWire,
  RequestErrorEvent,
  RequestEvent,
  RequestKind,
  ResponseEvent,
  RetryEvent,
  TrusteeClientOptions,
  TrusteeHooks,
  TrusteeLogger,
} from './types';
