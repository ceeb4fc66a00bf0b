import type { Response } from 'express';

/**
 * An AbortSignal that aborts when the response's connection closes before the response was sent
 * (the client gave up or went away), so the request can stop working for nobody: pass it to
 * runWrite / runWriteBarrier / withClient. A response that finished never aborts it.
 */
export function clientGoneSignal(res: Response): AbortSignal {
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}
