'use strict';
/**
 * The client side of a partition test, run inside the client's network namespace
 * (`ip netns exec NS node netns-http-proxy.js`): the jest process cannot reach addresses that
 * exist only inside namespaces, so it sends each HTTPS request here as a JSON line on stdin and
 * reads the outcome as a JSON line on stdout. Plain JavaScript: it runs without a build.
 *
 * in:  {"op":"creds","cert":PEM,"key":PEM}       client certificate for requests with "auth"
 *      {"id":N,"url","method","path","headers","body","auth","timeoutMs"}
 * out: {"id":N,"status":201,"text":"…","ms":12.5} or {"id":N,"error":"…","ms":…}
 */
const https = require('node:https');
const readline = require('node:readline');

let creds = {};
/** One keep-alive agent per node URL, as a long-lived client would hold. */
const agents = new Map();

function agentFor(url) {
  let agent = agents.get(url);
  if (!agent) {
    agent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false });
    agents.set(url, agent);
  }
  return agent;
}

function send(msg) {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

function handle(r) {
  const started = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - started) / 1e6;
  const body = r.body === undefined ? undefined : Buffer.from(r.body);
  const req = https.request(
    new URL(r.path, r.url),
    {
      method: r.method || 'GET',
      headers: { ...(body ? { 'content-length': String(body.length) } : {}), ...(r.headers || {}) },
      agent: agentFor(r.url),
      // The nodes' API certificates name their A–B addresses, not these: trust is not under test.
      rejectUnauthorized: false,
      ...(r.auth ? { cert: creds.cert, key: creds.key } : {}),
      timeout: r.timeoutMs || 10000,
    },
    (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        send({ id: r.id, status: res.statusCode, text: Buffer.concat(chunks).toString('utf8'), ms: ms() }),
      );
      res.on('error', (e) => send({ id: r.id, error: String(e.code || e.message), ms: ms() }));
    },
  );
  req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
  req.on('error', (e) => send({ id: r.id, error: String(e.code || e.message), ms: ms() }));
  if (body) req.write(body);
  req.end();
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const msg = JSON.parse(line);
  if (msg.op === 'creds') creds = { cert: msg.cert, key: msg.key };
  else handle(msg);
});
process.stdin.on('end', () => process.exit(0));
send({ ready: true });
