/**
 * One call's overall deadline. Made once per call; every attempt's budget, the backoff check and
 * the discovery of the active node read this one value (no separate clocks that could disagree).
 */
export class Deadline {
  /** Epoch ms at which the call gives up. */
  readonly at: number;

  constructor(
    /** The whole budget, ms. */
    readonly budgetMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.at = now() + budgetMs;
  }

  /** Ms left (≤ 0 once passed). */
  remainingMs(): number {
    return this.at - this.now();
  }

  isExpired(): boolean {
    return this.remainingMs() <= 0;
  }
}
