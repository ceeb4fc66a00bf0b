-- Organization contacts (issue 15): the seed's "KeyTrustee Contact Registration" mail carries a
-- link https://<host>:11371/?q=TOKEN valid 12 hours, where the contact uploads a GPG public key.
-- Only a SHA-256 of the token is stored (a database reader cannot use a link); a token is used
-- once. Contact keys are public keys (armored), used to encrypt pending-client notices.
create table contact_tokens (
  token_hash bytea primary key check (length(token_hash) = 32),
  org_id bigint not null references orgs(id),
  contact text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz
);
create index contact_tokens_org_idx on contact_tokens (org_id, contact);

create table contact_keys (
  org_id bigint not null references orgs(id),
  contact text not null,
  -- upper-case hex OpenPGP fingerprint of the primary key
  fingerprint text not null check (fingerprint ~ '^[0-9A-F]{40,64}$'),
  armored_public_key text not null check (length(armored_public_key) <= 65536),
  uploaded_at timestamptz not null default now(),
  primary key (org_id, contact)
);

-- Mail to send (graphile-worker jobs only carry the outbox id): a row is marked sent once the
-- SMTP server accepted it, so a job retried after a successful send finds it sent and stops.
create table mail_outbox (
  id bigserial primary key,
  kind text not null check (kind in ('contact-registration', 'pending-client')),
  org_id bigint not null references orgs(id),
  recipient text not null,
  -- the message as built (subject, text, signature): never a token in clear except inside the
  -- contact's own link, which is sealed like auth secrets
  payload_sealed bytea not null,
  payload_key_id text not null,
  created_at timestamptz not null default now(),
  attempts int not null default 0,
  last_error text,
  sent_at timestamptz,
  message_id text
);
create index mail_outbox_unsent_idx on mail_outbox (id) where sent_at is null;

alter publication trustee_journal add table contact_tokens, contact_keys, mail_outbox;

-- The key page (a request) reads tokens and stores an uploaded key; registration queues the
-- pending-client notice. Organizations stay admin-managed (owner role).
grant select, update on contact_tokens to keytrustee_app;
grant select, insert, update on contact_keys to keytrustee_app;
grant select, insert on mail_outbox to keytrustee_app;
grant usage, select on sequence mail_outbox_id_seq to keytrustee_app;
