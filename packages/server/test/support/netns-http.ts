import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { trackPid, untrackPid, waitForExit } from './processes';

/** What one request through the proxy came back with: an HTTP answer or a transport error. */
export interface ProxiedResponse {
  status: number;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Duration measured inside the client namespace, ms. */
  ms: number;
  /** Transport failure (ECONNREFUSED, ENETUNREACH, TIMEOUT, …); status is 0 then. */
  error?: string;
}

export interface ProxiedRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Send the client certificate set with `setCreds`. */
  auth?: boolean;
  timeoutMs?: number;
}

export interface NetnsHttp {
  pid: number;
  setCreds(creds: { cert: string; key: string }): void;
  request(url: string, r: ProxiedRequest): Promise<ProxiedResponse>;
  close(): Promise<void>;
}

const PROXY = join(__dirname, 'netns-http-proxy.js');

/**
 * Starts netns-http-proxy.js under `prefix` (`ip netns exec NS`) and returns a client whose
 * requests leave from that namespace. Never throws for an HTTP or transport failure: the answer
 * says which; throws only when the proxy itself is gone.
 */
export async function startNetnsHttp(prefix: string[]): Promise<NetnsHttp> {
  const [file, ...args] = [...prefix, process.execPath, PROXY];
  const child: ChildProcessWithoutNullStreams = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  if (child.pid) trackPid(child.pid);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const pending = new Map<number, (r: ProxiedResponse) => void>();
  let nextId = 1;
  let onReady: (() => void) | undefined;
  let gone: Error | undefined;
  createInterface({ input: child.stdout }).on('line', (line) => {
    const msg = JSON.parse(line) as {
      ready?: boolean;
      id?: number;
      status?: number;
      text?: string;
      ms: number;
      error?: string;
    };
    if (msg.ready) return onReady?.();
    const done = pending.get(msg.id ?? -1);
    if (!done) return;
    pending.delete(msg.id!);
    let json: unknown;
    try {
      json = msg.text ? JSON.parse(msg.text) : undefined;
    } catch {
      json = undefined;
    }
    done({ status: msg.status ?? 0, text: msg.text ?? '', json, ms: msg.ms, error: msg.error });
  });
  child.on('exit', (code, signal) => {
    gone = new Error(`netns http proxy exited (${signal ?? code}): ${stderr.trim()}`);
    for (const done of pending.values())
      done({ status: 0, text: '', json: undefined, ms: 0, error: 'PROXY_GONE' });
    pending.clear();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`netns http proxy did not start: ${stderr.trim()}`)),
      15_000,
    );
    onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    child.once('exit', () => {
      clearTimeout(timer);
      reject(gone);
    });
  });
  const write = (msg: unknown) => {
    if (gone) throw gone;
    child.stdin.write(`${JSON.stringify(msg)}\n`);
  };
  return {
    pid: child.pid!,
    setCreds: (creds) => write({ op: 'creds', ...creds }),
    request(url, r) {
      const id = nextId++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        write({ id, url, ...r });
      });
    },
    async close() {
      child.stdin.end();
      if (!(await waitForExit(child.pid!, 3000))) child.kill('SIGKILL');
      untrackPid(child.pid!);
    },
  };
}
