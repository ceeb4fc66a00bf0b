/** tar-stream, loaded when a backup is written or read (not by every CLI and keytrusteed start). */
import type * as TarStream from 'tar-stream';
import { lazyModule } from '../lazy-module';

export const tarStream = lazyModule(() => require('tar-stream') as typeof TarStream);
