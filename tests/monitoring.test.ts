/**
 * Issue 13: monitoring and deployment files checked against real things. promtool (Debian
 * package `prometheus`) validates the scrape config and the alert rules and runs their unit tests;
 * every metric the alert rules and the Grafana dashboard use must appear in a live scrape of a
 * real pair; the gauges flip on that pair during a passive outage and a promotion; request ids.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { readPostmasterPid } from '@trustee/replicator';
import { TrusteeClient } from '@trustee/sdk';
import { BINS, runCli } from '../packages/server/test/support/cli';
import {
  logTail,
  startTestCluster,
  type NodeName,
  type TestCluster,
} from '../packages/server/test/support/cluster';
import { registerTestClient, type TestClient } from '../packages/server/test/support/clients';
import { putDepositRaw } from '../packages/server/test/support/deposit-requests';
import { httpsRequest } from '../packages/server/test/support/https-request';
import { trackPid, untrackPid, waitFor, waitForExit } from '../packages/server/test/support/processes';
import { freePort } from '../packages/server/test/support/ports';
import { registerSdkClient } from '../packages/server/test/support/sdk-client';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

const ROOT = join(__dirname, '..');
const PROM_DIR = join(ROOT, 'deploy', 'prometheus');
/** Alert rules in deploy/prometheus/alerts.yml (each with a firing and a silent promtool test). */
const ALERT_RULES = 18;
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'trustee-dashboard.json');
const ENTRYPOINT = join(ROOT, 'deploy', 'docker', 'entrypoint.sh');

// js-yaml comes with graphile-worker (a server dependency, via cosmiconfig): no new package for a parser.
const yaml = require('js-yaml') as { load(text: string): unknown };

/** Runs the compose entrypoint with bash (dry mode unless asked), bounded. */
function entrypoint(env: Record<string, string>, args: string[] = []) {
  const r = spawnSync('bash', [ENTRYPOINT, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TRUSTEE_ENTRYPOINT_DRY_RUN: '1', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function promtool(args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`promtool could not run (apt-get install prometheus): ${r.error.message}`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Metric names a PromQL expression reads (ours, plus Prometheus' own `up`). */
function metricNamesIn(expr: string): string[] {
  return [...expr.matchAll(/\b(trustee_[a-z0-9_]+|up)\b(?=\s*[{[)\s]|$)/g)].map((m) => m[1]);
}

function alertExpressions(): string[] {
  const text = readFileSync(join(PROM_DIR, 'alerts.yml'), 'utf8');
  return [...text.matchAll(/^\s+expr: (>\n)?([\s\S]*?)\n\s+(?:for|labels):/gm)].map((m) => m[2].trim());
}

function dashboardExpressions(): string[] {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  return d.panels.flatMap((p) => p.targets.map((t) => t.expr));
}

/** Sample names of a Prometheus text exposition (histograms give _bucket/_sum/_count). */
function scrapedNames(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)?.[0] ?? ''),
  );
}

/** One sample's value: `name{labels…}` must contain every `match` pair. */
function sample(text: string, name: string, match: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = m[2] ?? '';
    if (Object.entries(match).every(([k, v]) => labels.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return undefined;
}

describe('alert rules and scrape config (promtool)', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTempDir('trustee-prom-');
  });
  afterAll(() => removeDir(dir));

  test('promtool accepts the scrape config with its rule file and CA path', () => {
    // The config names /etc/prometheus/trustee/… (where the README installs it); promtool checks
    // that the CA file exists, so point it at a copy in a temp dir holding a real certificate.
    const conf = readFileSync(join(PROM_DIR, 'prometheus.yml'), 'utf8').replaceAll(
      '/etc/prometheus/trustee/',
      `${dir}/`,
    );
    expect(conf).toContain(`${dir}/trustee-ca.pem`);
    writeFileSync(join(dir, 'prometheus.yml'), conf);
    copyFileSync(join(PROM_DIR, 'alerts.yml'), join(dir, 'alerts.yml'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=trustee-ca',
        '-days',
        '1',
        '-keyout',
        join(dir, 'ca.key'),
        '-out',
        join(dir, 'trustee-ca.pem'),
      ],
      { stdio: 'ignore' },
    );
    const r = promtool(['check', 'config', 'prometheus.yml'], dir);
    expect(r.out).toContain('SUCCESS: prometheus.yml is valid prometheus config file syntax');
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.code).toBe(0);
  });

  test('promtool accepts the rules, and its unit tests fire every alert when expected and only then', () => {
    const check = promtool(['check', 'rules', 'alerts.yml'], PROM_DIR);
    expect(check.out).toContain(`SUCCESS: ${ALERT_RULES} rules found`);
    expect(check.code).toBe(0);
    const run = promtool(['test', 'rules', 'alerts.test.yml'], PROM_DIR);
    expect(run.out).toContain('SUCCESS');
    expect(run.code).toBe(0);
    // Each alert is expected to fire in some test and to stay silent in the healthy one.
    const tests = readFileSync(join(PROM_DIR, 'alerts.test.yml'), 'utf8');
    const alerts = [...readFileSync(join(PROM_DIR, 'alerts.yml'), 'utf8').matchAll(/- alert: (\w+)/g)].map(
      (m) => m[1],
    );
    expect(alerts).toHaveLength(ALERT_RULES);
    for (const a of alerts) {
      // A firing expectation names the alert in exp_labels' test block; the healthy block expects [].
      const blocks = tests.split(/\n\s+- eval_time: /).filter((b) => b.includes(`alertname: ${a}\n`));
      expect({ alert: a, firing: blocks.some((b) => /exp_alerts:\n\s+- exp_labels:/.test(b)) }).toEqual({
        alert: a,
        firing: true,
      });
      expect({ alert: a, silent: blocks.some((b) => /exp_alerts: \[\]/.test(b)) }).toEqual({
        alert: a,
        silent: true,
      });
    }
  });

  test('every dashboard expression is valid PromQL (promtool, as recording rules)', () => {
    const exprs = dashboardExpressions();
    expect(exprs.length).toBeGreaterThan(15);
    const rules = exprs
      .map(
        (e, i) =>
          `      - record: trustee:dashboard_${i}\n        expr: '${e.replaceAll('$job', 'trustee').replaceAll("'", "''")}'\n`,
      )
      .join('');
    writeFileSync(join(dir, 'dashboard-rules.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules}`);
    const r = promtool(['check', 'rules', 'dashboard-rules.yml'], dir);
    expect(r.out).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(r.code).toBe(0);
  });
});

const SYSTEMD_DIR = join(ROOT, 'deploy', 'systemd');
const UNITS = [
  'keytrustee-db.service',
  'keytrusteed.service',
  'ktbackup.service',
  'ktbackup.timer',
  'keyhsm.service',
];

/** `[Section]` → key → values (a key may repeat), for the hardening assertions and the INI check. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let cur: Map<string, string[]> | undefined;
  text.split('\n').forEach((line, i) => {
    const l = line.trim();
    if (!l || l.startsWith('#') || l.startsWith(';')) return;
    const sec = /^\[([A-Za-z]+)\]$/.exec(l);
    if (sec) {
      cur = new Map();
      sections.set(sec[1], cur);
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(l);
    if (!kv || !cur) throw new Error(`line ${i + 1} is neither [Section] nor Key=value: ${l}`);
    cur.set(kv[1], [...(cur.get(kv[1]) ?? []), kv[2]]);
  });
  return sections;
}

describe('systemd units', () => {
  const hasAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { stdio: 'ignore' }).status === 0;

  test(
    hasAnalyze
      ? 'systemd-analyze verify accepts every unit, and rejects a misspelt one'
      : 'systemd-analyze is absent here: every unit parses as [Section] Key=value (INI check only)',
    () => {
      for (const u of UNITS)
        expect([u, parseUnit(readFileSync(join(SYSTEMD_DIR, u), 'utf8')).size]).toEqual([
          u,
          expect.any(Number),
        ]);
      if (!hasAnalyze) return;
      const ok = spawnSync('systemd-analyze', ['verify', ...UNITS], {
        cwd: SYSTEMD_DIR,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      // The check is real: a misspelt key is reported.
      const dir = makeTempDir('trustee-units-');
      try {
        for (const u of UNITS) copyFileSync(join(SYSTEMD_DIR, u), join(dir, u));
        const unit = join(dir, 'keytrusteed.service');
        writeFileSync(
          unit,
          readFileSync(unit, 'utf8').replace('ProtectSystem=strict', 'ProtectSytem=strict'),
        );
        const bad = spawnSync('systemd-analyze', ['verify', ...UNITS], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 60_000,
        });
        expect(bad.stderr).toContain("Unknown key 'ProtectSytem'");
      } finally {
        removeDir(dir);
      }
    },
  );

  test('keytrusteed and ktbackup run as the service account with no capabilities and a read-only system', () => {
    for (const u of ['keytrusteed.service', 'ktbackup.service']) {
      const svc = parseUnit(readFileSync(join(SYSTEMD_DIR, u), 'utf8')).get('Service')!;
      const one = (k: string) => svc.get(k)?.at(-1);
      expect({ u, user: one('User'), group: one('Group') }).toEqual({
        u,
        user: 'keytrustee',
        group: 'keytrustee',
      });
      for (const [k, v] of Object.entries({
        NoNewPrivileges: 'true',
        ProtectSystem: 'strict',
        ProtectHome: 'true',
        PrivateTmp: 'true',
        PrivateDevices: 'true',
        CapabilityBoundingSet: '',
        SystemCallFilter: '@system-service',
        RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6 AF_NETLINK',
        // keytrusteed also reaches SoftHSM's token directory when it exists (Key HSM over PKCS#11).
        ReadWritePaths:
          u === 'keytrusteed.service' ? '/var/lib/keytrustee -/var/lib/softhsm' : '/var/lib/keytrustee',
      }))
        expect({ u, k, v: one(k) }).toEqual({ u, k, v });
      expect(svc.has('MemoryDenyWriteExecute')).toBe(false); // V8's JIT
    }
    const db = parseUnit(readFileSync(join(SYSTEMD_DIR, 'keytrustee-db.service'), 'utf8')).get('Service')!;
    expect(db.get('ProtectSystem')).toEqual(['strict']);
    expect(db.get('CapabilityBoundingSet')?.[0].split(' ').sort()).toEqual([
      'CAP_CHOWN',
      'CAP_DAC_OVERRIDE',
      'CAP_DAC_READ_SEARCH',
      'CAP_FOWNER',
      'CAP_KILL',
      'CAP_SETGID',
      'CAP_SETUID',
    ]);
    const timer = parseUnit(readFileSync(join(SYSTEMD_DIR, 'ktbackup.timer'), 'utf8'));
    expect(timer.get('Timer')?.get('Persistent')).toEqual(['true']);
    expect(timer.get('Install')?.get('WantedBy')).toEqual(['timers.target']);
  });
});

interface ComposeService {
  image?: string;
  build?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

describe('docker-compose.yml and its entrypoint (validated here: no Docker engine on these machines)', () => {
  const compose = yaml.load(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, ComposeService>;
    volumes: Record<string, unknown>;
  };
  const svc = compose.services;

  test('the pair, Redis, Prometheus and Grafana, each with a health check and the ports of the README', () => {
    expect(Object.keys(svc).sort()).toEqual(['grafana', 'node-a', 'node-b', 'prometheus', 'redis']);
    for (const [name, s] of Object.entries(svc))
      expect({ name, health: s.healthcheck?.test?.[0] }).toEqual({ name, health: 'CMD' });
    expect(svc['node-a'].ports).toEqual(['11371:11371']);
    expect(svc['node-b'].ports).toEqual(['11372:11371']);
    expect(svc.prometheus.ports).toEqual(['9090:9090']);
    expect(svc.grafana.ports).toEqual(['3000:3000']);
    // The nodes: the image's entrypoint (Dockerfile COPY), roles, peers, Redis, their own data volume.
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain('COPY deploy/docker/entrypoint.sh /usr/local/bin/trustee-entrypoint');
    for (const [n, role, peer] of [
      ['node-a', 'active', 'node-b'],
      ['node-b', 'passive', 'node-a'],
    ]) {
      const s = svc[n];
      expect(s.entrypoint).toEqual(['/usr/local/bin/trustee-entrypoint']);
      expect(s.healthcheck?.test).toEqual(['CMD', '/usr/local/bin/trustee-entrypoint', 'healthcheck']);
      expect(s.environment).toMatchObject({
        TRUSTEE_ROLE: role,
        TRUSTEE_HOST: n,
        TRUSTEE_PEER_HOST: peer,
        TRUSTEE_REDIS_URL: 'redis://redis:6379',
      });
      expect(s.volumes).toEqual([`${n}:/var/lib/keytrustee`, 'bootstrap:/bootstrap', 'certs:/certs']);
      expect(s.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
    }
    expect(Object.keys(compose.volumes).sort()).toEqual(['bootstrap', 'certs', 'node-a', 'node-b']);
    // Every host file mounted exists; every named volume used is declared.
    for (const s of Object.values(svc))
      for (const v of s.volumes ?? []) {
        const src = v.split(':')[0];
        if (src.startsWith('./'))
          expect({ v, exists: existsSync(join(ROOT, src)) }).toEqual({ v, exists: true });
        else expect(Object.keys(compose.volumes)).toContain(src);
      }
    expect(svc.prometheus.volumes).toEqual(
      expect.arrayContaining([
        './deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro',
        'certs:/certs:ro',
      ]),
    );
    expect(svc.grafana.volumes).toContain('./deploy/grafana:/var/lib/grafana/dashboards:ro');
    expect(svc.grafana.depends_on).toEqual({ prometheus: { condition: 'service_healthy' } });
  });

  test("compose's Prometheus config passes promtool, scraping both nodes as the rules' job over HTTPS", () => {
    const dir = makeTempDir('trustee-compose-prom-');
    try {
      const text = readFileSync(join(ROOT, 'deploy', 'docker', 'prometheus.yml'), 'utf8');
      const conf = yaml.load(text) as {
        scrape_configs: {
          scheme: string;
          static_configs: { targets: string[] }[];
          relabel_configs: unknown[];
        }[];
      };
      expect(conf.scrape_configs.map((c) => c.static_configs[0].targets[0])).toEqual([
        'node-a:11371',
        'node-b:11371',
      ]);
      for (const c of conf.scrape_configs) {
        expect(c.scheme).toBe('https');
        expect(c.relabel_configs).toEqual([{ target_label: 'job', replacement: 'trustee' }]);
      }
      writeFileSync(join(dir, 'prometheus.yml'), text.replaceAll('/certs/', `${dir}/`));
      copyFileSync(join(PROM_DIR, 'alerts.yml'), join(dir, 'alerts.yml'));
      for (const n of ['node-a', 'node-b'])
        copyFileSync(join(ROOT, 'deploy', 'docker', 'entrypoint.sh'), join(dir, `${n}.pem`));
      const r = promtool(['check', 'config', 'prometheus.yml'], dir);
      expect(r.out).toContain(`SUCCESS: ${ALERT_RULES} rules found`);
      expect(r.code).toBe(0);
    } finally {
      removeDir(dir);
    }
  });

  test('the entrypoint (dry run, temp dirs): active first start, passive first start, later start, refusals', () => {
    const dir = makeTempDir('trustee-entrypoint-');
    try {
      const share = join(dir, 'share');
      const base = {
        TRUSTEE_BOOTSTRAP_DIR: share,
        TRUSTEE_CERTS_DIR: join(dir, 'certs'),
        TRUSTEE_WAIT_SECONDS: '1',
      };
      const a = {
        ...base,
        TRUSTEE_ROLE: 'active',
        TRUSTEE_HOST: 'node-a',
        TRUSTEE_PEER_HOST: 'node-b',
        TRUSTEE_HOME: join(dir, 'a'),
        TRUSTEE_REDIS_URL: 'redis://redis:6379',
      };
      const ca = `--confdir ${dir}/a/.keytrustee`;
      const first = entrypoint(a);
      expect(first.code).toBe(0);
      const lines = first.stdout.trim().split('\n');
      expect(lines.slice(0, 3)).toEqual([
        `+ ktadmin ${ca} init --host node-a --port 11371 --peer https://node-b:11371`,
        `+ set REDIS_URL=redis://redis:6379 in ${dir}/a/.keytrustee/keytrustee.conf`,
        `+ ktadmin ${ca} db --bootstrap --port 11381 --pg-rootdir ${dir}/a/db --slave node-b:11381`,
      ]);
      expect(lines).toEqual(
        expect.arrayContaining([
          `+ cp -a ${dir}/a/.keytrustee ${share}/confdir.tmp`,
          `+ rm -rf ${share}/confdir.tmp/.ssl`,
          `+ mv ${share}/confdir.tmp ${share}/confdir`,
          `+ cp ${dir}/a/.keytrustee/.ssl/ssl-cert-keytrustee.pem ${dir}/certs/node-a.pem`,
          `+ ktadmin ${ca} db --start --background`,
          `+ ktadmin ${ca} enable-synchronous-replication`,
          `+ runuser -u keytrustee -- keytrusteed ${ca}`,
        ]),
      );
      expect(lines.indexOf(`+ ktadmin ${ca} db --start --background`)).toBeGreaterThan(
        lines.indexOf(`+ touch ${dir}/a/.bootstrapped`),
      );

      // The passive waits for the active's confdir copy, bounded, and says what it waited for.
      const b = {
        ...base,
        TRUSTEE_ROLE: 'passive',
        TRUSTEE_HOST: 'node-b',
        TRUSTEE_PEER_HOST: 'node-a',
        TRUSTEE_HOME: join(dir, 'b'),
      };
      const waited = entrypoint(b);
      expect(waited.code).toBe(1);
      expect(waited.stderr).toContain(`the active's confdir did not appear in ${share}/confdir within 1s`);
      mkdirSync(join(share, 'confdir'), { recursive: true });
      writeFileSync(join(share, 'confdir', 'keytrustee.conf'), '{}');
      const cb = `--confdir ${dir}/b/.keytrustee`;
      const passive = entrypoint(b);
      expect(passive.code).toBe(0);
      expect(passive.stdout.trim().split('\n')).toEqual([
        `+ ktadmin ${cb} init --host node-b --port 11371 --peer https://node-a:11371 --from-peer-confdir ${share}/confdir`,
        `+ ktadmin ${cb} db --bootstrap --port 11381 --pg-rootdir ${dir}/b/db --master node-a:11381`,
        `+ rm -rf ${share}/confdir`,
        `+ mkdir -p ${dir}/certs`,
        `+ cp ${dir}/b/.keytrustee/.ssl/ssl-cert-keytrustee.pem ${dir}/certs/node-b.pem`,
        `+ touch ${dir}/b/.bootstrapped`,
        `+ ktadmin ${cb} db --start --background`,
        `+ runuser -u keytrustee -- keytrusteed ${cb}`,
      ]);

      // A later start (the volume says bootstrapped): start only, no init, no bootstrap.
      mkdirSync(join(dir, 'b'), { recursive: true });
      writeFileSync(join(dir, 'b', '.bootstrapped'), '');
      expect(entrypoint(b).stdout.trim().split('\n')).toEqual([
        `+ ktadmin ${cb} db --start --background`,
        `+ runuser -u keytrustee -- keytrusteed ${cb}`,
      ]);

      const noRole = entrypoint({ ...b, TRUSTEE_ROLE: '' });
      expect(noRole.code).toBe(1);
      expect(noRole.stderr).toContain("set TRUSTEE_ROLE to active or passive (found '')");
      const noPeer = entrypoint({ ...a, TRUSTEE_PEER_HOST: '' });
      expect(noPeer.code).toBe(1);
      expect(noPeer.stderr).toContain('set TRUSTEE_PEER_HOST to the other node');
    } finally {
      removeDir(dir);
    }
  });
});

describe('the compose entrypoint for real: two node homes on loopback ports stand in for the two containers', () => {
  const dir = makeTempDir('trustee-entrypoint-real-');
  const homes = { a: join(dir, 'a'), b: join(dir, 'b') };
  const running: Partial<Record<NodeName, ChildProcess>> = {};
  let ports: { a: { api: number; db: number }; b: { api: number; db: number } };

  function start(n: NodeName): ChildProcess {
    const me = ports[n];
    const peer = ports[n === 'a' ? 'b' : 'a'];
    const log = openSync(join(dir, `${n}.log`), 'a');
    const child = spawn('bash', [ENTRYPOINT], {
      env: {
        PATH: `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}`,
        TRUSTEE_ROLE: n === 'a' ? 'active' : 'passive',
        TRUSTEE_HOST: 'localhost',
        TRUSTEE_PEER_HOST: 'localhost',
        TRUSTEE_API_PORT: String(me.api),
        TRUSTEE_DB_PORT: String(me.db),
        TRUSTEE_PEER_API_PORT: String(peer.api),
        TRUSTEE_PEER_DB_PORT: String(peer.db),
        TRUSTEE_HOME: homes[n],
        TRUSTEE_BOOTSTRAP_DIR: join(dir, 'share'),
        TRUSTEE_CERTS_DIR: join(dir, 'certs'),
        TRUSTEE_WAIT_SECONDS: '120',
        TRUSTEE_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', log, log],
      detached: true,
    });
    closeSync(log);
    trackPid(child.pid!);
    running[n] = child;
    return child;
  }

  /** SIGTERM as `docker stop` sends it: the entrypoint stops keytrusteed, then PostgreSQL. */
  async function stop(n: NodeName): Promise<void> {
    const child = running[n];
    if (!child?.pid) return;
    child.kill('SIGTERM');
    expect(await waitForExit(child.pid, 60_000)).toBe(true);
    untrackPid(child.pid);
    running[n] = undefined;
  }

  const health = async (n: NodeName) =>
    (await httpsRequest(`https://localhost:${ports[n].api}`, { path: '/v1/health' }).catch(() => undefined))
      ?.json as { role: string; writable: boolean; writeMode: string | null } | undefined;

  beforeAll(async () => {
    ports = {
      a: { api: await freePort(), db: await freePort() },
      b: { api: await freePort(), db: await freePort() },
    };
  });
  afterAll(async () => {
    for (const n of ['a', 'b'] as const) {
      const child = running[n];
      if (child?.pid) {
        child.kill('SIGTERM');
        if (!(await waitForExit(child.pid, 30_000))) process.kill(-child.pid, 'SIGKILL');
        untrackPid(child.pid);
      }
      const pg = readPostmasterPid(join(homes[n], 'db'));
      if (pg) process.kill(pg, 'SIGKILL');
    }
    removeDir(dir);
  });

  test('first start bootstraps a synchronous pair; docker stop stops both processes; a second start only starts', async () => {
    start('a');
    start('b');
    const writable = async () => {
      const [a, b] = [await health('a'), await health('b')];
      return a?.role === 'active' && a.writable && a.writeMode === 'sync' && b?.role === 'passive';
    };
    // On a timeout the error carries both nodes' health and last log lines, to tell a slow box
    // from a hang (the first start once took > 150 s inside a full run, 18 s alone).
    const waitWritable = (what: string) =>
      waitFor(what, writable, 150_000, 500).catch(async (e: Error) => {
        const tail = (n: string) => logTail(join(dir, `${n}.log`), 40);
        const h = JSON.stringify({ a: await health('a'), b: await health('b') });
        throw new Error(
          `${e.message}\nhealth: ${h}\n--- a.log (end) ---\n${tail('a')}\n--- b.log (end) ---\n${tail('b')}`,
        );
      });
    await waitWritable('the pair writable and synchronous');
    // The confdir copy (identity, master key) is gone from the shared volume once the passive took it.
    expect(readdirSync(join(dir, 'share'))).toEqual([]);
    expect(readdirSync(join(dir, 'certs'))).toEqual(['localhost.pem']);
    for (const n of ['a', 'b'] as const) {
      const hc = entrypoint(
        { TRUSTEE_HOST: 'localhost', TRUSTEE_API_PORT: String(ports[n].api), TRUSTEE_HOME: homes[n] },
        ['healthcheck'],
      );
      expect({ n, code: hc.code }).toEqual({ n, code: 0 });
    }

    await stop('b');
    await stop('a');
    for (const n of ['a', 'b'] as const)
      expect({ n, pg: readPostmasterPid(join(homes[n], 'db')) }).toEqual({ n, pg: undefined });
    expect(readFileSync(join(dir, 'a.log'), 'utf8')).toContain('synchronous replication enabled');

    start('a');
    start('b');
    // As long as the first start may take (a restart on a loaded box once took > 90 s in CI).
    await waitWritable('the pair writable again after a restart');
    const second =
      readFileSync(join(dir, 'b.log'), 'utf8').split('was bootstrapped before: starting')[1] ?? '';
    expect(second).not.toContain('taking a base backup');
    expect(second).not.toContain('initialized');
    await stop('b');
    await stop('a');
  }, 400_000);
});

describe('a live pair: scrapes, gauges flipping, request ids', () => {
  let cluster: TestCluster;
  let client: TestClient;
  const scrape = async (n: NodeName) => (await httpsRequest(cluster.node(n).url, { path: '/metrics' })).text;

  beforeAll(async () => {
    cluster = await startTestCluster();
    client = await registerTestClient(cluster.a.url, cluster.org, cluster.authCode);
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  test('every metric the alert rules and the dashboard use is in a live scrape of the pair', async () => {
    expect((await putDepositRaw(cluster.a.url, client, 'monitoring-1', 'v')).status).toBe(201);
    const names = new Set([...scrapedNames(await scrape('a')), ...scrapedNames(await scrape('b'))]);
    const used = new Set([...alertExpressions(), ...dashboardExpressions()].flatMap(metricNamesIn));
    used.delete('up'); // written by Prometheus itself for each target
    expect(used.size).toBeGreaterThan(20);
    const missing = [...used].filter((n) => !names.has(n));
    expect(missing).toEqual([]);
    // A few values the dashboard relies on.
    const a = await scrape('a');
    expect(sample(a, 'trustee_build_info')).toBe(1);
    expect(a).toMatch(/^trustee_build_info\{version="\d+\.\d+\.\d+[^"]*",node_version="v\d+/m);
    expect(sample(a, 'trustee_node_role', { role: 'active' })).toBe(1);
    expect(sample(a, 'trustee_writable')).toBe(1);
    expect(sample(a, 'trustee_tls_certificate_expiry_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000);
    expect(sample(a, 'trustee_errors_total', { code: 'WRITE_IN_DOUBT' })).toBe(0);
    expect(sample(a, 'trustee_rate_limit_rejections_total', { limiter: 'registration' })).toBe(0);
    // The 30 s count refresh ran once at start: the registered client is counted (b reads it too).
    await waitFor(
      'clients gauge',
      async () => sample(await scrape('a'), 'trustee_clients', { state: 'active' }) !== undefined,
    );
    expect(sample(await scrape('b'), 'trustee_clients', { state: 'pending' })).toBeGreaterThanOrEqual(0);
  });

  test('errors are counted by code, and answered with the request id sent (or a fresh one)', async () => {
    const before = sample(await scrape('a'), 'trustee_errors_total', { code: 'NOT_FOUND' }) ?? -1;
    const r = await httpsRequest(cluster.a.url, {
      path: '/no-such-thing',
      headers: { 'x-request-id': 'mon-test.1:a_b' },
    });
    expect(r.status).toBe(404);
    expect(r.headers['x-request-id']).toBe('mon-test.1:a_b');
    expect(r.json.error).toMatchObject({ code: 'NOT_FOUND', requestId: 'mon-test.1:a_b' });
    expect(sample(await scrape('a'), 'trustee_errors_total', { code: 'NOT_FOUND' })).toBe(before + 1);
    const bad = await httpsRequest(cluster.a.url, {
      path: '/no-such-thing',
      headers: { 'x-request-id': 'has space<>' },
    });
    expect(bad.json.error.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(bad.headers['x-request-id']).toBe(bad.json.error.requestId);
    const ok = await httpsRequest(cluster.a.url, { path: '/v1/health' });
    expect(ok.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('each request is logged with its id: the one the caller sent, and one the SDK sends per call', async () => {
    const reg = await registerSdkClient(cluster, 'trustee-monitoring-');
    const sdk = TrusteeClient.fromConfigFile(reg.configPath, {
      endpoints: [cluster.a.url],
      cache: { maxEntries: 0 },
    });
    try {
      // Another client's deposit names are not visible: a 404 through the SDK, logged like any request.
      await expect(sdk.get('monitoring-1')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      sdk.close();
      removeDir(reg.dir);
    }
    const logged = await waitFor('request lines in the log', () => {
      const lines = readFileSync(join(cluster.a.dir, 'keytrusteed.log'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('"msg":"request"'))
        .map(
          (l) =>
            JSON.parse(l) as { reqId: string; route: string; method: string; status: number; ms: number },
        );
      const sent = lines.find((l) => l.reqId === 'mon-test.1:a_b');
      const fromSdk = lines.find((l) => l.route === '/v1/deposits/:name' && l.method === 'GET');
      return sent && fromSdk ? { sent, fromSdk } : undefined;
    });
    expect(logged.sent).toMatchObject({ route: 'unmatched', method: 'GET', status: 404 });
    expect(logged.fromSdk.status).toBe(404);
    expect(logged.fromSdk.reqId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
    expect(logged.fromSdk.ms).toBeGreaterThanOrEqual(0);
  });

  test("the compose health check (entrypoint.sh healthcheck) passes on a live node's /v1/health, fails without one", async () => {
    const env = {
      TRUSTEE_HOST: 'localhost',
      TRUSTEE_HEALTH_URL: `${cluster.a.url}/v1/health`,
      TRUSTEE_HEALTH_CA: join(cluster.a.confdir, '.ssl', 'ssl-cert-keytrustee.pem'),
    };
    expect(entrypoint(env, ['healthcheck']).code).toBe(0);
    const down = entrypoint({ ...env, TRUSTEE_HEALTH_URL: 'https://127.0.0.1:1/v1/health' }, ['healthcheck']);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('ECONNREFUSED');
    // Verified against the node's certificate: another name does not pass.
    expect(entrypoint({ ...env, TRUSTEE_HOST: 'node-z' }, ['healthcheck']).code).toBe(1);
  });

  test("the passive's PostgreSQL dies: the active's trustee_writable goes 1 -> 0 with the reason, and back", async () => {
    expect(sample(await scrape('a'), 'trustee_writable')).toBe(1);
    await cluster.killPostgres('b');
    const down = await waitFor('active not writable', async () => {
      const t = await scrape('a');
      return sample(t, 'trustee_writable') === 0 ? t : undefined;
    });
    expect(sample(down, 'trustee_write_refusal_code', { code: 'PASSIVE_UNAVAILABLE' })).toBe(1);
    expect(sample(down, 'trustee_replication_sync_connected')).toBe(0);
    expect(sample(down, 'trustee_node_role', { role: 'active' })).toBe(1);
    const refused = await putDepositRaw(cluster.a.url, client, 'monitoring-2', 'v');
    expect(refused.json?.error?.code).toBe('PASSIVE_UNAVAILABLE');
    const after = await scrape('a');
    expect(
      sample(after, 'trustee_write_refusals_total', { reason: 'PASSIVE_UNAVAILABLE' }),
    ).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'trustee_errors_total', { code: 'PASSIVE_UNAVAILABLE' })).toBeGreaterThanOrEqual(1);
    // The passive's own node sees its database down.
    await waitFor('passive db down', async () => sample(await scrape('b'), 'trustee_db_up') === 0);

    await cluster.startPostgres('b');
    const up = await waitFor(
      'active writable again',
      async () => {
        const t = await scrape('a');
        return sample(t, 'trustee_writable') === 1 ? t : undefined;
      },
      60_000,
    );
    expect(sample(up, 'trustee_write_refusal_code', { code: 'PASSIVE_UNAVAILABLE' })).toBe(0);
    expect(sample(up, 'trustee_replication_sync_connected')).toBe(1);
    await waitFor(
      'passive streaming',
      async () => {
        const t = await scrape('b');
        return (
          sample(t, 'trustee_replication_sync_connected') === 1 &&
          sample(t, 'trustee_node_role', { role: 'passive' }) === 1
        );
      },
      60_000,
    );
  }, 150_000);

  test("the passive's PostgreSQL hangs (SIGSTOP): writes in doubt are counted by reason", async () => {
    await waitFor('active writable', async () => sample(await scrape('a'), 'trustee_writable') === 1, 60_000);
    const before = await scrape('a');
    expect(sample(before, 'trustee_writes_in_doubt_total', { reason: 'standby_not_confirmed' })).toBe(0);
    const refusedBefore = sample(before, 'trustee_write_refusals_total', { reason: 'WRITE_IN_DOUBT' }) ?? -1;
    cluster.signalPostgres('b', 'SIGSTOP');
    let codes: string[];
    try {
      // Right away the standby still looks connected (wal_sender_timeout has not passed): the
      // commits wait for it and are cancelled after COMMIT_WAIT_MS.
      const answers = await Promise.all(
        [1, 2, 3].map((i) =>
          putDepositRaw(cluster.a.url, client, `in-doubt-${i}`, 'v', { timeoutMs: 30_000 }),
        ),
      );
      codes = answers.map((r) => r.json?.error?.code as string);
    } finally {
      cluster.signalPostgres('b', 'SIGCONT');
    }
    const inDoubt = codes.filter((c) => c === 'WRITE_IN_DOUBT').length;
    expect(inDoubt).toBeGreaterThanOrEqual(1);
    const after = await scrape('a');
    const byReason = [
      'commit_outcome_unknown',
      'standby_wait_interrupted',
      'standby_not_confirmed',
      'replay_not_confirmed',
    ].map((reason) => sample(after, 'trustee_writes_in_doubt_total', { reason }) ?? -1);
    expect(byReason.reduce((a, b) => a + b, 0)).toBe(inDoubt);
    expect(byReason[2]).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'trustee_write_refusals_total', { reason: 'WRITE_IN_DOUBT' })).toBe(
      refusedBefore + inDoubt,
    );
    await waitFor(
      'active writable after SIGCONT',
      async () => sample(await scrape('a'), 'trustee_writable') === 1,
      60_000,
    );
  }, 120_000);

  test('after a promotion the new active reports trustee_node_role{role="active"} 1 and a higher timeline', async () => {
    const timelineBefore = sample(await scrape('b'), 'trustee_timeline');
    expect(sample(await scrape('b'), 'trustee_node_role', { role: 'passive' })).toBe(1);
    await cluster.killServer('a', 'SIGKILL');
    await cluster.killPostgres('a');
    const promoted = await runCli(BINS.ktadmin, ['--confdir', cluster.b.confdir, 'promote'], {
      timeoutMs: 120_000,
    });
    expect(promoted.code).toBe(0);
    const t = await waitFor('b active', async () => {
      const s = await scrape('b');
      return sample(s, 'trustee_node_role', { role: 'active' }) === 1 ? s : undefined;
    });
    expect(sample(t, 'trustee_node_role', { role: 'passive' })).toBe(0);
    expect(sample(t, 'trustee_timeline')).toBe((timelineBefore ?? 0) + 1);
    // Strict mode with no passive: active, not writable, and the code says why.
    expect(sample(t, 'trustee_writable')).toBe(0);
    expect(sample(t, 'trustee_write_refusal_code', { code: 'PASSIVE_UNAVAILABLE' })).toBe(1);
    await waitFor(
      'b sees a unreachable',
      async () => sample(await scrape('b'), 'trustee_peer_reachable') === 0,
    );
  }, 150_000);
});
