-- Audit trail (issue 16). One row per write, inserted by the write's own transaction (so it
-- replicates with it, and a rolled-back write leaves none), plus aggregate rows counting refused
-- registrations and authentication failures. Never a deposit value, never an auth code.
--
-- Tamper evidence without serializing writes: each row carries row_mac, an HMAC-SHA256 of its
-- fields under a key derived from the confdir's master key (src/audit/audit-mac.ts), so a
-- database-only attacker cannot forge or alter a row. Writers never touch a shared row: the
-- active's chainer (src/audit/audit-chainer.ts) gives committed rows contiguous positions (seq)
-- about once a second and chain_mac = HMAC(previous chain_mac || seq || row_mac), which makes a
-- removed or reordered row visible (`ktadmin audit verify`).
create table audit_log (
  id bigserial primary key,
  -- 16 random bytes, covered by row_mac: a copy of a row cannot pass as another event (verify
  -- looks for repeated uids; no unique index, so a write maintains as few indexes as possible).
  uid bytea not null check (length(uid) = 16),
  at timestamptz not null,
  -- client: an API caller (actor = its fingerprint); admin: a CLI (actor = command, os_user);
  -- system: keytrusteed itself (aggregates, key maintenance).
  actor_kind text not null check (actor_kind in ('client', 'admin', 'system')),
  actor text not null check (length(actor) <= 300),
  os_user text check (length(os_user) <= 100),
  action text not null check (action ~ '^[a-z][a-z0-9.-]{0,63}$'),
  org text check (length(org) <= 64),
  -- which deposit (name + version), organization or client the action touched
  subject text check (length(subject) <= 300),
  subject_version int,
  -- client address as the server saw it (after TRUSTED_PROXIES), or the CLI's host
  source text check (length(source) <= 300),
  -- 'ok' or a stable error code (aggregates)
  result text not null check (result ~ '^[A-Za-z_]{1,40}$'),
  -- events this row stands for: 1, or an aggregate's count over its window
  count int not null default 1 check (count > 0),
  -- how the write committed: sync (both nodes), single-node (operator's degraded mode or a
  -- revocation committed alone), standalone (no pair)
  write_mode text check (write_mode in ('sync', 'single-node', 'standalone')),
  detail text check (length(detail) <= 300),
  row_mac bytea not null check (length(row_mac) = 32),
  seq bigint unique check (seq > 0),
  chain_mac bytea check (length(chain_mac) = 32),
  check ((seq is null) = (chain_mac is null))
);
-- Every index costs each write (the insert) and the chainer (its update is never HOT: seq is
-- indexed): the primary key, the chain order, and the rows still to chain. `audit export --since`
-- walks the primary key instead of an index on `at`.
create index audit_log_unchained_idx on audit_log (id) where seq is null;

alter table audit_log replica identity default;
alter publication trustee_journal add table audit_log;

-- The request role appends rows and reads them (the chainer reads unchained rows); it never
-- updates or deletes one. Chaining goes through audit_chain() below, which can only fill in the
-- positions of unchained rows, contiguously after the current last one.
grant select, insert on audit_log to keytrustee_app;
grant usage on sequence audit_log_id_seq to keytrustee_app;

create function audit_chain(ids bigint[], first_seq bigint, prev_mac bytea, chain_macs bytea[])
returns int
language plpgsql security definer set search_path = pg_catalog, public
as $$
declare
  head_seq bigint;
  head_mac bytea;
  n int;
begin
  if coalesce(array_length(ids, 1), 0) = 0 then
    return 0;
  end if;
  if array_length(ids, 1) <> array_length(chain_macs, 1) then
    raise exception 'audit_chain: % ids but % chain MACs', array_length(ids, 1), array_length(chain_macs, 1);
  end if;
  -- One chainer at a time (writers never take this lock).
  perform pg_advisory_xact_lock(hashtextextended('trustee/audit-chain', 0));
  select seq, chain_mac into head_seq, head_mac from audit_log where seq is not null order by seq desc limit 1;
  if coalesce(head_seq, 0) + 1 <> first_seq or head_mac is distinct from prev_mac then
    raise exception 'audit_chain: the chain head moved (expected seq %, found %)', first_seq - 1, coalesce(head_seq, 0)
      using errcode = '40001';
  end if;
  update audit_log a
     set seq = first_seq + x.ord - 1, chain_mac = x.mac
    from unnest(ids, chain_macs) with ordinality as x(id, mac, ord)
   where a.id = x.id and a.seq is null;
  get diagnostics n = row_count;
  if n <> array_length(ids, 1) then
    raise exception 'audit_chain: % of % rows were unchained', n, array_length(ids, 1) using errcode = '40001';
  end if;
  return n;
end
$$;
revoke all on function audit_chain(bigint[], bigint, bytea, bytea[]) from public;
grant execute on function audit_chain(bigint[], bigint, bytea, bytea[]) to keytrustee_app;
