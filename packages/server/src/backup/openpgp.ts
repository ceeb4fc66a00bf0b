/**
 * openpgp v6 ships ESM types for a package whose `require` entry is CommonJS: TypeScript (Node16,
 * CommonJS output) refuses a static import, so the types come in as import-mode types and the
 * module through `require`, which Node resolves to `dist/node/openpgp.min.cjs`.
 */
import type * as OpenPGP from 'openpgp' with { 'resolution-mode': 'import' };
import { lazyModule } from '../lazy-module';

/** Loaded on first use (≈ 390 KB, ≈ 70 ms): only backups, mail and contact keys need it. */
export const openpgp = lazyModule(() => require('openpgp') as typeof OpenPGP);
export type PublicKey = OpenPGP.PublicKey;
export type PrivateKey = OpenPGP.PrivateKey;
