import pino from 'pino';
import type { JournalConsumer } from './journal-consumer';
import { createJournalMetrics } from './journal-metrics';
import { runJournalWhileActive } from './run-journal-while-active';

function fakeConsumer() {
  const calls: string[] = [];
  let running = false;
  const consumer: JournalConsumer = {
    metrics: createJournalMetrics('/nonexistent'),
    start() {
      calls.push('start');
      running = true;
    },
    async stop() {
      calls.push('stop');
      running = false;
    },
    isRunning: () => running,
    isStreaming: () => running,
  };
  return { consumer, calls };
}

/** Polls (bounded) until `fn` holds. */
async function eventually(fn: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(fn()).toBe(true);
}

describe('runJournalWhileActive', () => {
  it('starts the consumer while the node is active and stops it otherwise', async () => {
    const { consumer, calls } = fakeConsumer();
    let active = false;
    const runner = runJournalWhileActive({
      consumer,
      isActive: () => active,
      log: pino({ level: 'silent' }),
      intervalMs: 5,
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(calls).toEqual([]);
    active = true;
    await eventually(() => consumer.isRunning());
    active = false;
    await eventually(() => !consumer.isRunning());
    active = true;
    await eventually(() => consumer.isRunning());
    await runner.close();
    expect(consumer.isRunning()).toBe(false);
    expect(calls).toEqual(['start', 'stop', 'start', 'stop']);
  });
});
