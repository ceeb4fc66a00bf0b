-- Key HSM (issue 14): key-encryption keys (KEKs) live on a PKCS#11 token, named here by their
-- token label; data keys are random AES-256 keys wrapped (AES-GCM) by a KEK and stored here,
-- so both nodes (sharing one token, or tokens holding the same KEK) unwrap the same data keys.
-- Deposit rows record the data key that sealed them (deposits.key_id = data_keys.id).
create table hsm_keks (
  id text primary key check (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  -- active: new data keys are wrapped by it (exactly one); retiring: data keys are being
  -- re-wrapped away from it; retired: nothing uses it any more.
  state text not null check (state in ('active', 'retiring', 'retired')),
  created_at timestamptz not null default now(),
  retired_at timestamptz
);
create unique index hsm_keks_one_active on hsm_keks ((true)) where state = 'active';

create table data_keys (
  id text primary key,
  -- deposit: seals deposit values and org secrets; digest: the request-digest (idempotency) key,
  -- exactly one, carried over from the master key file so digests survive the switch.
  purpose text not null check (purpose in ('deposit', 'digest')),
  kek_id text not null references hsm_keks(id),
  wrapped bytea not null,
  created_at timestamptz not null default now()
);
create unique index data_keys_one_digest on data_keys (purpose) where purpose = 'digest';
create index data_keys_kek_idx on data_keys (kek_id);

-- GET /test_hsm: the seed's sample deposits, sealed through the HSM path.
create table hsm_test_deposits (
  name text primary key check (name ~ '^TEST_HELLO_DEPOSIT[0-9-]+$'),
  sealed_value bytea not null,
  key_id text not null,
  created_at timestamptz not null default now()
);

alter table hsm_keks replica identity default;
alter table data_keys replica identity default;
-- The change journal must carry the data keys: a deposit replayed from it needs its key.
alter publication trustee_journal add table hsm_keks, data_keys;

grant select on hsm_keks, data_keys, hsm_test_deposits to keytrustee_app;
-- The active creates a fresh data key now and then (HSM_DATA_KEY_MAX_AGE_SECONDS).
grant insert on data_keys, hsm_test_deposits to keytrustee_app;
