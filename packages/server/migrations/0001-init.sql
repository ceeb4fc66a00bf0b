-- Organizations, clients and deposits. Deposit values are sealed by the server's key
-- hierarchy (the client usually encrypted them already); auth secrets are sealed too.

create table orgs (
  id bigserial primary key,
  uuid text not null unique,
  name text not null unique check (name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$'),
  auth_secret_sealed bytea not null,
  auth_secret_key_id text not null,
  contacts text[] not null default '{}',
  state int not null default 0,
  creation timestamptz not null default now(),
  expiration timestamptz not null default '9999-12-31T15:59:59Z',
  key_info jsonb
);

create table clients (
  fingerprint text primary key,
  org_id bigint not null references orgs(id),
  name text,
  state text not null check (state in ('active', 'pending', 'disabled')),
  certificate text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index clients_org_idx on clients(org_id);

create table deposits (
  id bigserial primary key,
  owner_fp text not null references clients(fingerprint),
  name text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$'),
  version int not null check (version > 0),
  deleted boolean not null default false,
  sealed_value bytea,
  key_id text,
  metadata jsonb,
  idempotency_key text,
  request_hash bytea,
  created_at timestamptz not null default now(),
  unique (owner_fp, name, version),
  check (deleted or sealed_value is not null)
);
create unique index deposits_idempotency_idx on deposits(owner_fp, idempotency_key) where idempotency_key is not null;

-- One row updated by a replayed idempotent write: its commit waits for the standby, which
-- proves every earlier commit (lower LSN) was applied there too.
create table write_barrier (id int primary key, at timestamptz not null);
insert into write_barrier values (1, now());

-- Fingerprint of the cluster identity key the active runs with. It replicates to the passive,
-- which refuses client traffic when its own confdir holds a different identity.
create table cluster_identity (id int primary key check (id = 1), fingerprint text not null, recorded_at timestamptz not null default now());
