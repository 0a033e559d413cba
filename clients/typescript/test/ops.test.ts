// Operations through the client against a real gateway (see support.ts): jobs that failed
// against a provider that was down, re-driven one by one and in bulk once it is back, each with
// its reason in the user's trail; a sync with a reason. scripts/typescript.sh starts this
// gateway with 2 attempts per job and short retry delays, so a job fails quickly.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { type Job, type RetryJobsRequest, unwrap } from "../src/index.js";
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

/** A user whose submission to Carbn failed (Carbn answering 503), and that failed job. */
async function failedSubmission(): Promise<{ userId: string; job: Job }> {
  await simulatorFault("POST", { provider: "carbn", status: 503, error_rate: 1.0 });
  const user = await client.createUser(newUser());
  assert.equal(user.links[0]?.status, "pending_submission");
  const job = await eventually("the submission fails after its attempts", 60, async () => {
    for await (const job of client.paginate("/v1/jobs", { state: "failed", kind: "submit_link" })) {
      if (job.payload["user_id"] === user.id) return job;
    }
    return undefined;
  });
  return { userId: user.id, job };
}

/** Waits until the user's link has an account at its provider. */
function submitted(userId: string) {
  return eventually("the re-driven submission reaches Carbn", 60, async () => {
    const now = await client.getUser(userId);
    return now.links[0]?.provider_user_id ? now : undefined;
  });
}

async function eventsOfType(userId: string, type: string) {
  return (await client.events(userId)).filter((event) => event.type === type);
}

test("a job that failed while its provider was down is re-driven with retryJob and a reason", async () => {
  const { userId, job: failed } = await failedSubmission();
  assert.match(failed.last_error ?? "", /provider_unavailable/);
  const atCarbn = await client.listJobs({ state: "failed", provider: "carbn" });
  assert.ok(atCarbn.data.some((job) => job.id === failed.id));
  assert.ok(atCarbn.data.every((job) => job.payload["provider"] === "carbn"));
  assert.deepEqual((await client.listJobs({ state: "failed", provider: "kraken" })).data, []);

  await simulatorFault("DELETE");
  const queued = await client.retryJob(failed.id, "Carbn is back");
  assert.equal(queued.id, failed.id);
  assert.equal(queued.state, "queued");
  const user = await submitted(userId);
  assert.notEqual(user.links[0]?.status, "pending_submission");

  const [redriven, ...more] = await eventsOfType(userId, "job_redriven");
  assert.deepEqual(more, []);
  assert.equal(redriven?.["job_id"], failed.id);
  assert.equal(redriven?.["kind"], "submit_link");
  assert.equal(redriven?.["provider"], "carbn");
  assert.equal(redriven?.["reason"], "Carbn is back");
  assert.equal(redriven?.["key_name"], "development");

  const again = await problemOf(() => client.retryJob(failed.id, "once more"));
  assert.equal(again.status, 409);
  assert.equal(again.code, "job_not_failed");
  const tooLong = await problemOf(() => client.retryJob(failed.id, "x".repeat(501)));
  assert.equal(tooLong.status, 422);
  assert.ok(tooLong.field("reason"), JSON.stringify(tooLong.errors));
});

test("retryJobs re-drives every failed job of a kind at a provider, each with the reason", async () => {
  const first = await failedSubmission();
  const second = await failedSubmission();
  await simulatorFault("DELETE");

  const answer = await client.retryJobs({ kind: "submit_link", provider: "carbn", reason: "outage over" });
  assert.equal(answer.retried, 2);
  assert.equal(answer.remaining, 0);
  for (const { userId, job } of [first, second]) {
    await submitted(userId);
    const redriven = await eventsOfType(userId, "job_redriven");
    assert.deepEqual(
      redriven.map((event) => [event["job_id"], event["reason"], event["key_name"]]),
      [[job.id, "outage over", "development"]],
    );
  }

  const nothingLeft = await client.retryJobs({ kind: "submit_link", reason: "again" });
  assert.deepEqual(nothingLeft, { retried: 0, remaining: 0 });
  const noReason = await problemOf(() =>
    client.retryJobs({ kind: "submit_link" } as RetryJobsRequest),
  );
  assert.equal(noReason.status, 422);
  assert.ok(noReason.field("reason"), JSON.stringify(noReason.errors));
});

test("syncUser reads the links' statuses from the provider now, with its reason recorded", async () => {
  const body = newUser();
  body.email = body.email.replace("@", "+approve@"); // the simulator approves at once
  const user = await client.createUser(body);
  const synced = await eventually("the user is submitted", 60, async () => {
    const now = await client.syncUser(user.id);
    return now.links[0]?.provider_user_id ? now : undefined;
  });
  assert.equal(synced.id, user.id);
  assert.equal(synced.links[0]?.status, "approved");

  const before = (await eventsOfType(user.id, "sync_requested")).length;
  await client.syncUser(user.id, { provider: "carbn", reason: "drift report" });
  const requested = await eventsOfType(user.id, "sync_requested");
  assert.equal(requested.length, before + 1);
  const last = requested.at(-1);
  assert.equal(last?.["provider"], "carbn");
  assert.equal(last?.["reason"], "drift report");
  assert.equal(last?.["key_name"], "development");

  const blank = await problemOf(() => client.syncUser(user.id, { reason: " " }));
  assert.equal(blank.status, 422);
  assert.ok(blank.field("reason"), JSON.stringify(blank.errors));
  const missing = await problemOf(() => client.syncUser("00000000-0000-7000-8000-000000000000"));
  assert.equal(missing.status, 404);
});
