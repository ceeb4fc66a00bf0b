import type { Logger } from '../logger';

/**
 * After a destroy commits, the erased values still sit in the old row versions (and their TOAST
 * chunks) until VACUUM reclaims them. This runs `VACUUM (TRUNCATE false) deposits` on the active
 * with the owner role (the request role may not vacuum), outside the request, one at a time:
 * requests arriving while one runs coalesce into a single follow-up run. TRUNCATE false keeps
 * migration 0003's rule: no ACCESS EXCLUSIVE lock that the passive's replay would queue behind a
 * backup. The passive's pages are cleaned by replaying this VACUUM's WAL.
 *
 * What stays (README "Deposit lifecycle and quotas"): freed space is not zeroed until reused,
 * WAL segments (and archived WAL, backups taken before the destroy, journal files) keep the value
 * until recycled or rolled, and VACUUM cannot remove a row version an open snapshot still sees.
 */
export class DepositVacuum {
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(
    /** Runs the VACUUM on a fresh owner-role connection (no query timeout: it may take a while). */
    private readonly vacuum: () => Promise<void>,
    private readonly log: Logger,
  ) {}

  /** Asks for a run; returns at once. */
  request(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => (this.running = undefined));
  }

  /**
   * Shutdown: later requests are ignored; waits for a run in progress at most `waitMs` (a VACUUM
   * left running finishes on its own connection, or ends when PostgreSQL stops).
   */
  async close(waitMs = 5000): Promise<void> {
    this.closed = true;
    if (!this.running) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }

  /** @internal tests: resolves when no run is pending. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    // Bounded: each pass consumes the requests made before it started.
    for (let pass = 0; pass < 100; pass++) {
      this.again = false;
      const started = performance.now();
      try {
        await this.vacuum();
        this.log.info({ ms: Math.round(performance.now() - started) }, 'deposits vacuumed after a destroy');
      } catch (e) {
        this.log.warn({ err: e }, 'vacuum after a destroy failed; the next destroy or autovacuum retries');
      }
      if (!this.again || this.closed) return;
    }
  }
}
