import { createLogger } from '../logger';
import { DepositVacuum } from './vacuum-after-destroy';

const log = createLogger({ level: 'silent' });

/** A vacuum that stays running until released, counting its runs. */
function gatedVacuum() {
  const state = { runs: 0, release: () => undefined as void };
  const run = () =>
    new Promise<void>((resolve) => {
      state.runs += 1;
      state.release = resolve;
    });
  return { state, run };
}

describe('DepositVacuum', () => {
  it('runs once per request when idle, and folds requests made during a run into one more run', async () => {
    const { state, run } = gatedVacuum();
    const v = new DepositVacuum(run, log);
    v.request();
    expect(state.runs).toBe(1);
    v.request();
    v.request();
    v.request();
    expect(state.runs).toBe(1);
    state.release();
    await new Promise((r) => setImmediate(r));
    expect(state.runs).toBe(2);
    state.release();
    await v.idle();
    expect(state.runs).toBe(2);
  });

  it('keeps going after a failed run and ignores requests after close', async () => {
    let runs = 0;
    const v = new DepositVacuum(async () => {
      runs += 1;
      if (runs === 1) throw new Error('connection refused');
    }, log);
    v.request();
    await v.idle();
    v.request();
    await v.idle();
    expect(runs).toBe(2);
    await v.close();
    v.request();
    await v.idle();
    expect(runs).toBe(2);
  });

  it('does not let a long run hold up shutdown beyond the wait', async () => {
    const { state, run } = gatedVacuum();
    const v = new DepositVacuum(run, log);
    v.request();
    await v.close(20);
    expect(state.runs).toBe(1);
    state.release();
    await v.idle();
  });
});
