-- Change journal (issue 9, part 4): logical decoding publishes committed changes of the tables
-- that hold customer state. pgoutput identifies an UPDATE/DELETE's row by the table's replica
-- identity; the default is the primary key (orgs.id, clients.fingerprint, deposits.id), which
-- the journal replays with upsert/delete by key. Set explicitly so a later schema change cannot
-- silently leave a table without one. TRUNCATE is not published: the product never truncates
-- these tables, and an operator who does must take a fresh backup.
alter table orgs replica identity default;
alter table clients replica identity default;
alter table deposits replica identity default;

create publication trustee_journal for table orgs, clients, deposits
  with (publish = 'insert, update, delete');
