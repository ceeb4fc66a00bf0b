#!/usr/bin/env bash
# Entrypoint of a Trustee node container (docker-compose.yml): on first start it makes the node
# (`ktadmin init` + `db --bootstrap`), then runs PostgreSQL (through ktadmin, as the service account)
# and keytrusteed in the foreground. TRUSTEE_ROLE decides the first start only:
#   active:  init, db --bootstrap --slave PEER, publish the confdir (no .ssl/) for the passive,
#            start, and make the passive synchronous once it streams;
#   passive: wait for the published confdir, init --from-peer-confdir, db --bootstrap --master PEER
#            (a base backup of the active), remove the published copy, start.
# Later starts (the volume holds .bootstrapped) only start. `entrypoint.sh healthcheck` probes
# /v1/health for the compose health check.
#
# TRUSTEE_ENTRYPOINT_DRY_RUN=1 prints the commands instead of running them (file checks and the
# wait still happen): tests/monitoring.test.ts runs this script that way against a temp directory.
set -euo pipefail

ROLE=${TRUSTEE_ROLE:-}
HOST=${TRUSTEE_HOST:-$(hostname)}
PEER=${TRUSTEE_PEER_HOST:-}
API_PORT=${TRUSTEE_API_PORT:-11371}
DB_PORT=${TRUSTEE_DB_PORT:-11381}
PEER_API_PORT=${TRUSTEE_PEER_API_PORT:-$API_PORT}
PEER_DB_PORT=${TRUSTEE_PEER_DB_PORT:-$DB_PORT}
HOME_DIR=${TRUSTEE_HOME:-/var/lib/keytrustee}
CONFDIR=$HOME_DIR/.keytrustee
DB_DIR=$HOME_DIR/db
SHARE=${TRUSTEE_BOOTSTRAP_DIR:-/bootstrap}
CERTS=${TRUSTEE_CERTS_DIR:-/certs}
REDIS_URL=${TRUSTEE_REDIS_URL:-}
WAIT_SECONDS=${TRUSTEE_WAIT_SECONDS:-600}
DRY=${TRUSTEE_ENTRYPOINT_DRY_RUN:-0}
MARKER=$HOME_DIR/.bootstrapped

say() { echo "[entrypoint] $*" >&2; }
die() {
  say "error: $*"
  exit 1
}
run() {
  if [ "$DRY" = 1 ]; then
    echo "+ $*"
  else
    "$@"
  fi
}
ktadmin_() { run ktadmin --confdir "$CONFDIR" "$@"; }

# The compose health check: 200 from /v1/health (the node serves reads), verified against the
# node's own certificate (made by init for TRUSTEE_HOST).
healthcheck() {
  exec node -e '
    const [url, caFile, servername] = process.argv.slice(1);
    const req = require("https").get(url, { ca: require("fs").readFileSync(caFile), servername, timeout: 4000 },
      (r) => process.exit(r.statusCode === 200 ? 0 : 1));
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => { console.error(e.message); process.exit(1); });' \
    "${TRUSTEE_HEALTH_URL:-https://127.0.0.1:$API_PORT/v1/health}" \
    "${TRUSTEE_HEALTH_CA:-$CONFDIR/.ssl/ssl-cert-keytrustee.pem}" "$HOST"
}

# Retries a command every 2 s until it succeeds or WAIT_SECONDS pass (the peer may still be starting).
retry() {
  local what=$1
  shift
  local deadline=$((SECONDS + WAIT_SECONDS))
  until run "$@"; do
    [ $SECONDS -lt $deadline ] || die "$what did not succeed within ${WAIT_SECONDS}s"
    say "$what: not yet; retrying in 2 s"
    sleep 2
  done
}

set_redis() {
  [ -n "$REDIS_URL" ] || return 0
  if [ "$DRY" = 1 ]; then
    echo "+ set REDIS_URL=$REDIS_URL in $CONFDIR/keytrustee.conf"
    return 0
  fi
  # keytrustee.conf is JSON: set one key without touching the others.
  node -e '
    const fs = require("fs"); const [file, url] = process.argv.slice(1);
    const conf = JSON.parse(fs.readFileSync(file, "utf8")); conf.REDIS_URL = url;
    fs.writeFileSync(file, JSON.stringify(conf, null, 2) + "\n");' "$CONFDIR/keytrustee.conf" "$REDIS_URL"
}

publish_cert() {
  # Public certificate only, for Prometheus (tls_config.ca_file) and clients.
  run mkdir -p "$CERTS"
  run cp "$CONFDIR/.ssl/ssl-cert-keytrustee.pem" "$CERTS/$HOST.pem"
}

bootstrap_active() {
  say "first start: making $HOST the active (peer $PEER)"
  ktadmin_ init --host "$HOST" --port "$API_PORT" --peer "https://$PEER:$PEER_API_PORT"
  set_redis
  # HOST:PORT names the passive's slot as the passive derives it (port left out when 11381).
  ktadmin_ db --bootstrap --port "$DB_PORT" --pg-rootdir "$DB_DIR" --slave "$PEER:$PEER_DB_PORT"
  # The passive copies this (as the README's `rsync --exclude .ssl`): it holds the cluster
  # identity and master key, so it lives only until the passive took it (see bootstrap_passive).
  run mkdir -p "$SHARE"
  run rm -rf "$SHARE/confdir.tmp"
  run cp -a "$CONFDIR" "$SHARE/confdir.tmp"
  run rm -rf "$SHARE/confdir.tmp/.ssl"
  run mv "$SHARE/confdir.tmp" "$SHARE/confdir"
}

bootstrap_passive() {
  say "first start: making $HOST the passive of $PEER"
  local deadline=$((SECONDS + WAIT_SECONDS))
  until [ -f "$SHARE/confdir/keytrustee.conf" ]; do
    [ $SECONDS -lt $deadline ] || die "the active's confdir did not appear in $SHARE/confdir within ${WAIT_SECONDS}s (is the active's first start done?)"
    sleep 2
  done
  ktadmin_ init --host "$HOST" --port "$API_PORT" --peer "https://$PEER:$PEER_API_PORT" --from-peer-confdir "$SHARE/confdir"
  set_redis
  retry 'base backup from the active' ktadmin --confdir "$CONFDIR" db --bootstrap --port "$DB_PORT" --pg-rootdir "$DB_DIR" --master "$PEER:$PEER_DB_PORT"
  run rm -rf "$SHARE/confdir"
}

# On `docker stop` (SIGTERM) or when keytrusteed exits: stop the server, the sync helper and
# PostgreSQL, in that order (`wait … || true`: a signalled child must not abort this under set -e).
stop_node() {
  trap - TERM INT
  if [ -n "${SYNC_PID:-}" ]; then
    pkill -TERM -P "$SYNC_PID" 2>/dev/null || true
    kill -TERM "$SYNC_PID" 2>/dev/null || true
  fi
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  ktadmin --confdir "$CONFDIR" db --stop || true
  exit "${1:-0}"
}

main() {
  [ "${1:-}" = healthcheck ] && healthcheck
  case "$ROLE" in
    active | passive) ;;
    *) die "set TRUSTEE_ROLE to active or passive (found '${ROLE}')" ;;
  esac
  [ -n "$PEER" ] || die 'set TRUSTEE_PEER_HOST to the other node'
  if [ ! -f "$MARKER" ]; then
    if [ "$ROLE" = active ]; then bootstrap_active; else bootstrap_passive; fi
    publish_cert
    run touch "$MARKER"
  else
    say "$HOST was bootstrapped before: starting"
    # The active's PostgreSQL is started by db --bootstrap; later starts (and the passive) start it here.
  fi
  ktadmin_ db --start --background
  local sync_pid=''
  if [ "$ROLE" = active ] && [ ! -f "$HOME_DIR/.synchronous" ]; then
    # Once, when the passive streams: from then on every write waits for it.
    (
      retry 'enable-synchronous-replication' ktadmin --confdir "$CONFDIR" enable-synchronous-replication
      run touch "$HOME_DIR/.synchronous"
    ) &
    sync_pid=$!
  fi
  if [ "$DRY" = 1 ]; then
    echo "+ runuser -u keytrustee -- keytrusteed --confdir $CONFDIR"
    wait
    exit 0
  fi
  # keytrusteed as the service account (ktadmin made it and gave it the confdir); PID 1 stays this
  # shell so that a stop also stops PostgreSQL cleanly.
  runuser -u keytrustee -- keytrusteed --confdir "$CONFDIR" &
  SERVER_PID=$!
  SYNC_PID=$sync_pid
  trap stop_node TERM INT
  local rc=0
  wait "$SERVER_PID" || rc=$?
  say "keytrusteed exited ($rc)"
  stop_node "$rc"
}

main "$@"
