import { randomBytes } from 'node:crypto';
import { insertDataKey, insertKek, selectKeks, setKekState, type KekRow } from '../db/sql/data-keys';
import { runWrite } from '../db/write-path';
import { adminActor, appendAudit } from '../audit/append-audit';
import { openNodeServices } from '../node/node-services';
import { dataKeyAad, DATA_KEY_BYTES, newDataKeyId } from './data-keys';

export class RotationError extends Error {
  override name = 'RotationError';
}

/** trustee-kek-N → N (0 for other labels). */
function kekNumber(id: string): number {
  const m = /^trustee-kek-(\d+)$/.exec(id);
  return m ? Number(m[1]) : 0;
}

export interface RotationStatus {
  keks: { id: string; state: KekRow['state']; dataKeys: number }[];
}

/**
 * `ktadmin rotate-kek` on the active: a new KEK on the token (trustee-kek-N+1) becomes active
 * with a first data key, in one write (both nodes); the old KEK becomes retiring. keytrusteed on
 * the active then re-wraps the old KEK's data keys in the background and retires it (the token
 * keeps it: backups from before the rotation still need it).
 */
export async function rotateKek(confdir: string): Promise<{ from: string; to: string }> {
  const svc = await openNodeServices(confdir);
  try {
    const hsm = await svc.openHsm();
    if (!hsm) throw new RotationError('no HSM is configured on this node (ktadmin keyhsm first)');
    const role = svc.state.decide().role;
    if (role !== 'active') throw new RotationError(`this node is ${role}: rotate the KEK on the active`);
    const keks = await selectKeks(svc.db.pool);
    const retiring = keks.find((k) => k.state === 'retiring');
    if (retiring)
      throw new RotationError(
        `the previous rotation is still re-wrapping data keys away from "${retiring.id}": wait until it is retired (ktadmin rotate-kek --status)`,
      );
    const active = keks.find((k) => k.state === 'active');
    if (!active)
      throw new RotationError('the cluster has no active KEK (ktadmin keyhsm on the active first)');
    const next = `trustee-kek-${Math.max(...keks.map((k) => kekNumber(k.id))) + 1}`;
    const kek = hsm.kek;
    await kek.ensureKek(next);
    const id = newDataKeyId();
    const key = randomBytes(DATA_KEY_BYTES);
    const wrapped = await kek.wrap(next, key, dataKeyAad(id, 'deposit'));
    key.fill(0);
    await runWrite(svc.write, async (c, tx) => {
      await setKekState(c, active.id, 'retiring');
      await insertKek(c, next, 'active');
      await insertDataKey(c, { id, purpose: 'deposit', kekId: next, wrapped });
      await appendAudit(c, tx, {
        who: adminActor('ktadmin rotate-kek'),
        action: 'kek.rotate',
        subject: next,
        detail: `${active.id} retiring`,
      });
    });
    return { from: active.id, to: next };
  } finally {
    await svc.close();
  }
}

/** KEKs and how many data keys each still wraps. */
export async function readRotationStatus(confdir: string): Promise<RotationStatus> {
  const svc = await openNodeServices(confdir);
  try {
    const { rows } = await svc.db.pool.query<{ id: string; state: KekRow['state']; n: string }>(
      `select k.id, k.state, count(d.id) as n from hsm_keks k left join data_keys d on d.kek_id = k.id
        group by k.id, k.state, k.created_at order by k.created_at, k.id`,
    );
    return { keks: rows.map((r) => ({ id: r.id, state: r.state, dataKeys: Number(r.n) })) };
  } finally {
    await svc.close();
  }
}
