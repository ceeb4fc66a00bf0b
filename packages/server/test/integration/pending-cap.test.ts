/**
 * Issue 10, finding 5 (part): anonymous registrations without the auth code cannot pile up
 * pending clients in an organization (each also costs a signature): MAX_PENDING_CLIENTS_PER_ORG.
 */
import { makeCsr, registerTestClient } from '../support/clients';
import { jsonRequest } from '../support/https-request';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, expectError, orgtool } from '../support/api';

describe('cap on pending clients per organization (issue 10, finding 5)', () => {
  let node: SingleNode;
  let code: string;
  const registerWithoutCode = () =>
    jsonRequest(node.url, 'POST', '/v1/clients/register', { org: 'capped', csr: makeCsr('capped').csr });

  beforeAll(async () => {
    node = await startSingleNode({ conf: { MAX_PENDING_CLIENTS_PER_ORG: 2 } });
    code = await addOrgCli(node, 'capped');
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('refuses a registration without the code past the cap, still admits clients with the code, and frees a slot on approval', async () => {
    const first = await registerWithoutCode();
    const second = await registerWithoutCode();
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(first.json.state).toBe('pending');
    const third = await registerWithoutCode();
    expectError(third, 429, 'RATE_LIMITED');
    expect(third.json.error.message).toMatch(/awaiting approval/);
    // With the auth code a client is active at once: the cap is about anonymous pending ones.
    expect((await registerTestClient(node.url, 'capped', code)).state).toBe('active');
    // An administrator approves one: a slot is free again.
    expect((await orgtool(node, 'enable-client', '--fingerprint', first.json.fingerprint)).code).toBe(0);
    expect((await registerWithoutCode()).status).toBe(200);
    expectError(await registerWithoutCode(), 429, 'RATE_LIMITED');
  });
});
