// Operations through the client against a real gateway (see support.ts): a job that failed
// against a provider that was down, re-driven once it is back; a sync. scripts/typescript.sh
// starts this gateway with 2 attempts per job and short retry delays, so a job fails quickly.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { type Job, unwrap } from "../src/index.js";
import { client, eventually, newUser, problemOf } from "./support.js";

/** The simulators' base URL, as GET /v1/providers reports it. */
async function simulatorUrl(): Promise<string> {
  const providers = unwrap(await client.raw.GET("/v1/providers"));
  const host = providers.data.find((provider) => provider.id === "carbn")?.base_url_host;
  assert.ok(host, "carbn is simulated");
  return `http://${host}`;
}

async function simulatorFault(method: "POST" | "DELETE", body?: object): Promise<void> {
  const response = await fetch(`${await simulatorUrl()}/_sim/faults`, {
    method,
    headers: { "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  assert.ok(response.ok, `simulator fault ${method}: ${response.status}`);
}

after(() => simulatorFault("DELETE"));

test("a job that failed while its provider was down is re-driven with retryJob", async () => {
  await simulatorFault("POST", { provider: "carbn", status: 503, error_rate: 1.0 });
  const user = await client.createUser(newUser());
  assert.equal(user.links[0]?.status, "pending_submission");

  const failed: Job = await eventually("the submission fails after its attempts", 60, async () => {
    for await (const job of client.paginate("/v1/jobs", { state: "failed", kind: "submit_link" })) {
      if (job.payload["user_id"] === user.id) return job;
    }
    return undefined;
  });
  assert.match(failed.last_error ?? "", /provider_unavailable/);
  assert.ok((await client.listJobs({ state: "failed" })).data.some((job) => job.id === failed.id));

  await simulatorFault("DELETE");
  const queued = await client.retryJob(failed.id);
  assert.equal(queued.id, failed.id);
  assert.equal(queued.state, "queued");

  const submitted = await eventually("the re-driven submission reaches Carbn", 60, async () => {
    const now = await client.getUser(user.id);
    return now.links[0]?.provider_user_id ? now : undefined;
  });
  assert.notEqual(submitted.links[0]?.status, "pending_submission");

  const again = await problemOf(() => client.retryJob(failed.id));
  assert.equal(again.status, 409);
  assert.equal(again.code, "job_not_failed");
});

test("syncUser reads the links' statuses from the provider now", async () => {
  const body = newUser();
  body.email = body.email.replace("@", "+approve@"); // the simulator approves at once
  const user = await client.createUser(body);
  const synced = await eventually("the user is submitted", 60, async () => {
    const now = await client.syncUser(user.id);
    return now.links[0]?.provider_user_id ? now : undefined;
  });
  assert.equal(synced.id, user.id);
  assert.equal(synced.links[0]?.status, "approved");

  const missing = await problemOf(() => client.syncUser("00000000-0000-7000-8000-000000000000"));
  assert.equal(missing.status, 404);
});
