// The calls the ops console makes, through the client against a real gateway (see
// support.ts): who the key is, the overview, masked users, per-field reveals and their audit
// record, search by a provider's user id.

import assert from "node:assert/strict";
import { test } from "node:test";

import type { Overview, RevealableField } from "../src/index.js";
import { baseUrl, client, eventually, newUser, problemOf } from "./support.js";

test("me() names the key and its scopes", async () => {
  const me = await client.me();
  assert.equal(me.key_name, "development");
  assert.deepEqual([...me.scopes].sort(), ["ops", "users:read", "users:write"]);
});

test("a masked user, one field revealed with a reason, and the reveal in the audit trail", async () => {
  const body = newUser();
  const user = await client.createUser(body);

  const masked = await client.getUser(user.id, { view: "masked" });
  assert.equal(masked.id, user.id);
  assert.match(masked.email, /^j\*\*\*@e\*\*\*\.com$/);
  assert.equal(masked.date_of_birth, "****-**-**");
  assert.equal(masked.address.country, "DE");
  assert.equal(masked.address.city, "***");
  assert.equal((await client.getUser(user.id)).email, body.email, "full is the default view");

  const page = await client.listUsers({ external_id: body.external_id, view: "masked" });
  assert.deepEqual(page.data.map((listed) => listed.email), [masked.email]);

  const revealed = await client.reveal(user.id, ["email", "address"], "support ticket 4711");
  assert.equal(revealed.email, body.email);
  assert.equal(revealed.address?.city, body.address.city);
  assert.equal(revealed.address?.postal_code, body.address.postal_code);

  const trail = await client.events(user.id);
  const reveal = trail.find((event) => event.type === "pii_revealed");
  assert.ok(reveal, JSON.stringify(trail.map((event) => event.type)));
  assert.deepEqual(reveal["fields"], ["email", "address"]);
  assert.equal(reveal["reason"], "support ticket 4711");
  assert.equal(reveal["key_name"], "development");
  assert.ok(!JSON.stringify(reveal).includes(body.email), "the event holds no value");
});

test("a refused reveal names the field, and a view the gateway does not know names view", async () => {
  const user = await client.createUser(newUser());

  const unknownField = await problemOf(() =>
    client.reveal(user.id, ["email", "favourite_colour" as RevealableField], "ticket 1"),
  );
  assert.equal(unknownField.status, 422);
  assert.ok(unknownField.field("fields[1]"), JSON.stringify(unknownField.errors));

  const noReason = await problemOf(() => client.reveal(user.id, ["email"], "   "));
  assert.equal(noReason.status, 422);
  assert.ok(noReason.field("reason"), JSON.stringify(noReason.errors));

  const trail = await client.events(user.id);
  assert.ok(trail.every((event) => event.type !== "pii_revealed"), "refused reveals leave no record");

  const badView = await problemOf(() =>
    client.getUser(user.id, { view: "everything" as "masked" }),
  );
  assert.equal(badView.status, 422);
  assert.ok(badView.field("view"), JSON.stringify(badView.errors));
});

test("listUsers finds a user by the provider's user id", async () => {
  const body = newUser();
  const user = await client.createUser(body);
  const providerUserId = await eventually("the user is submitted to Carbn", 60, async () => {
    return (await client.getUser(user.id)).links[0]?.provider_user_id ?? undefined;
  });

  const found = await client.listUsers({ provider_user_id: providerUserId });
  assert.deepEqual(found.data.map((listed) => listed.id), [user.id]);
  const atCarbn = await client.listUsers({ provider_user_id: providerUserId, provider: "carbn" });
  assert.deepEqual(atCarbn.data.map((listed) => listed.id), [user.id]);
  const atKraken = await client.listUsers({ provider_user_id: providerUserId, provider: "kraken" });
  assert.deepEqual(atKraken.data, []);
});

function sum(counts: Record<string, number | undefined>): number {
  return Object.values(counts).reduce<number>((total, count) => total + (count ?? 0), 0);
}

test("overview() counts a new link and a refused webhook, and its totals add up", async () => {
  const before: Overview = await client.overview();
  assert.equal(before.webhook_verification_failures.window_minutes, 60);

  const forged = await fetch(`${baseUrl}/v1/webhooks/carbn`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ forged: true }),
  });
  assert.equal(forged.status, 401);
  await client.createUser(newUser());

  const after = await client.overview();
  assert.ok(!Number.isNaN(Date.parse(after.generated_at)));
  assert.equal(sum(after.links_by_status["carbn"] ?? {}), sum(before.links_by_status["carbn"] ?? {}) + 1);
  const failures = after.webhook_verification_failures;
  assert.equal(failures.by_provider["carbn"], (before.webhook_verification_failures.by_provider["carbn"] ?? 0) + 1);
  assert.equal(failures.total, sum(failures.by_provider));
  assert.equal(after.failed_jobs.total, sum(after.failed_jobs.by_kind));
  assert.equal(after.drift.total, sum(after.drift.by_kind));
});
