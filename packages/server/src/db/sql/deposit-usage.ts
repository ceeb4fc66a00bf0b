import type { ClientBase } from 'pg';

/** A client's usage after a change (migration 0009's deposit_usage + deposit_usage_delta). */
export interface DepositUsage {
  liveDeposits: number;
  valueBytes: number;
}

/**
 * Records a write's change to the client's usage (an appended delta row: no lock shared with the
 * client's other writes) and returns the usage it now sees: the folded counter plus every delta
 * committed so far and this one. Two concurrent writes of one client may each see the other's
 * delta missing, so a quota can be overshot by the writes in flight at once (documented).
 */
export async function addDepositUsage(
  c: ClientBase,
  owner: string,
  delta: { liveDeposits: number; valueBytes: number },
): Promise<DepositUsage> {
  const { rows } = await c.query<{ live_deposits: string; value_bytes: string }>({
    name: 'kt-add-deposit-usage',
    text: `with ins as (insert into deposit_usage_delta (owner_fp, live_deposits, value_bytes) values ($1, $2::int, $3::bigint)),
                d as (select coalesce(sum(live_deposits), 0) as l, coalesce(sum(value_bytes), 0) as b
                        from deposit_usage_delta where owner_fp = $1)
           select greatest(coalesce(u.live_deposits, 0) + d.l + $2::int, 0)::text as live_deposits,
                  greatest(coalesce(u.value_bytes, 0) + d.b + $3::bigint, 0)::text as value_bytes
             from d left join deposit_usage u on u.owner_fp = $1`,
    values: [owner, delta.liveDeposits, delta.valueBytes],
  });
  return { liveDeposits: Number(rows[0].live_deposits), valueBytes: Number(rows[0].value_bytes) };
}

/**
 * Folds the committed deltas into the per-client counters (on the active, in a write). Returns the
 * number of delta rows folded. Deltas appended meanwhile stay for the next fold.
 */
export async function foldDepositUsage(c: ClientBase): Promise<number> {
  await c.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', ['trustee/deposit-usage']);
  const { rows } = await c.query<{ n: string }>(
    `with moved as (delete from deposit_usage_delta returning owner_fp, live_deposits, value_bytes),
          s as (select owner_fp, sum(live_deposits)::int as l, sum(value_bytes)::bigint as b, count(*) as n
                  from moved group by owner_fp),
          upd as (update deposit_usage u
                     set live_deposits = greatest(u.live_deposits + s.l, 0),
                         value_bytes = greatest(u.value_bytes + s.b, 0)
                    from s where u.owner_fp = s.owner_fp returning u.owner_fp),
          ins as (insert into deposit_usage (owner_fp, live_deposits, value_bytes)
                  select owner_fp, greatest(l, 0), greatest(b, 0) from s
                   where owner_fp not in (select owner_fp from upd) returning owner_fp)
     select coalesce(sum(n), 0)::text as n from s`,
  );
  return Number(rows[0].n);
}
