import { StartupError } from '../db/node-db';

/**
 * The TLS files or settings cannot be used: names the keytrustee.conf key or file and what to do.
 * At start keytrusteed stops with it; on a reload the current certificate stays.
 */
export class TlsConfigError extends StartupError {
  override name = 'TlsConfigError';
}
