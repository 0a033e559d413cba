// The client against a real gateway (see support.ts): idempotent creates, problem documents,
// paging, merge patches.

import assert from "node:assert/strict";
import { test } from "node:test";

import { createGatewayClient, idempotencyKey, unwrapAnswer } from "../src/index.js";
import { apiKey, baseUrl, client, newUser, problemOf, requests } from "./support.js";

test("idempotencyKey() makes distinct UUID v4 values the gateway accepts as keys", () => {
  const keys = new Set(Array.from({ length: 1000 }, () => idempotencyKey()));
  assert.equal(keys.size, 1000);
  for (const key of keys) {
    assert.match(key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
});

test("a create with an Idempotency-Key, replayed, answers the first user again", async () => {
  const body = newUser();
  const key = idempotencyKey();

  const first = unwrapAnswer(
    await client.raw.POST("/v1/users", { body, params: { header: { "Idempotency-Key": key } } }),
  );
  assert.equal(first.response.status, 201);
  assert.equal(first.replayed, false);
  assert.equal(first.data.external_id, body.external_id);

  // The same key and body: the stored first answer, marked as a replay; no second user (a
  // second create of this external_id would be 409 user_already_exists).
  const replay = unwrapAnswer(
    await client.raw.POST("/v1/users", { body, params: { header: { "Idempotency-Key": key } } }),
  );
  assert.equal(replay.response.status, 201);
  assert.equal(replay.replayed, true);
  assert.equal(replay.response.headers.get("idempotent-replayed"), "true");
  assert.deepEqual(replay.data, first.data);

  // The helper sends the key the same way.
  const again = await client.createUser(body, { idempotencyKey: key });
  assert.equal(again.id, first.data.id);

  // The same key with another body is refused, typed.
  const reused = await problemOf(() =>
    client.createUser({ ...body, email: `other.${body.email}` }, { idempotencyKey: key }),
  );
  assert.equal(reused.status, 409);
  assert.equal(reused.code, "idempotency_key_reused");

  // Without a key, the same body is a second create, refused as a duplicate.
  const duplicate = await problemOf(() => client.createUser(body));
  assert.equal(duplicate.status, 409);
  assert.equal(duplicate.code, "user_already_exists");
});

test("a 422 is a GatewayProblem naming each invalid field, with the request id", async () => {
  const body = newUser();
  body.address.country = "ZZ"; // not an assigned ISO 3166-1 code
  body.date_of_birth = "2020-02-30"; // not a calendar date

  const problem = await problemOf(() => client.createUser(body, { idempotencyKey: idempotencyKey() }));
  assert.equal(problem.status, 422);
  assert.equal(problem.code, "validation_failed");
  assert.ok(problem.requestId, "the problem carries the request id");
  assert.deepEqual(problem.errors.map((error) => error.field).sort(), [
    "address.country",
    "date_of_birth",
  ]);
  const country = problem.field("address.country");
  assert.ok(country?.code, "each error has a code");
  assert.ok(country.message.length > 0, "each error has a message");
  assert.equal(problem.field("email"), undefined);
  assert.match(problem.message, /^422 validation_failed: /);
  assert.deepEqual((problem.body as { errors: unknown[] }).errors.length, 2);
});

test("a problem that is not about fields: 404, and 401 for an unknown key", async () => {
  const missing = await problemOf(() => client.getUser("00000000-0000-7000-8000-000000000000"));
  assert.equal(missing.status, 404);
  assert.equal(missing.code, "not_found");
  assert.deepEqual(missing.errors, []);
  assert.ok(missing.requestId);

  const stranger = createGatewayClient({ baseUrl, apiKey: "sk_not_a_key_of_this_gateway" });
  const unauthorized = await problemOf(() => stranger.listUsers());
  assert.equal(unauthorized.status, 401);
  assert.equal(unauthorized.code, "unauthorized");
});

test("paginate follows next_cursor through every page, each item once", async () => {
  const created = new Set<string>();
  for (let i = 0; i < 5; i++) {
    created.add((await client.createUser(newUser(), { idempotencyKey: idempotencyKey() })).id);
  }

  const before = requests.length;
  const seen: string[] = [];
  for await (const user of client.paginate("/v1/users", { limit: 2 })) {
    seen.push(user.id);
  }
  const pages = requests.slice(before);

  assert.equal(new Set(seen).size, seen.length, "no user on two pages");
  for (const id of created) assert.ok(seen.includes(id), `user ${id} is on a page`);
  assert.ok(pages.length >= Math.ceil(seen.length / 2), `${seen.length} users in ${pages.length} pages of 2`);
  assert.ok(pages.length >= 3, `5 users at 2 per page take 3 pages at least, got ${pages.length}`);
  assert.ok(pages.slice(1).every((page) => page.includes("cursor=")), "later pages pass the cursor");

  // A loop that stops early stops fetching.
  const beforeEarly = requests.length;
  for await (const _ of client.paginate("/v1/users", { limit: 2 })) break;
  assert.equal(requests.length - beforeEarly, 1);

  // Paging a path with a path parameter, one event per page, gives the whole trail in order.
  const [someone] = created;
  assert.ok(someone);
  const oneByOne = [];
  for await (const event of client.paginate("/v1/users/{id}/events", { limit: 1 }, { id: someone })) {
    oneByOne.push(event);
  }
  assert.ok(oneByOne.length >= 1);
  assert.deepEqual(oneByOne, await client.events(someone));
});

test("patchUser sends a JSON merge patch: named fields change, null removes, the rest stays", async () => {
  const body = newUser();
  body.address.line2 = "Hinterhaus";
  const user = await client.createUser(body, { idempotencyKey: idempotencyKey() });

  const patched = await client.patchUser(user.id, {
    phone: "+49 151 1234 5679",
    address: { city: "Potsdam", line2: null },
  });
  assert.equal(patched.phone, "+4915112345679");
  assert.equal(patched.address.city, "Potsdam");
  assert.equal(patched.address.line2 ?? undefined, undefined);
  assert.equal(patched.address.line1, body.address.line1);
  assert.equal(patched.address.postal_code, body.address.postal_code);
  assert.equal(patched.email, body.email);

  assert.deepEqual((await client.getUser(user.id)).address, patched.address);

  // An invalid patch is refused whole, naming the field; the user is unchanged.
  const problem = await problemOf(() =>
    client.patchUser(user.id, { address: { country: "ZZ", city: "Nowhere" } }),
  );
  assert.equal(problem.status, 422);
  assert.ok(problem.field("address.country"), JSON.stringify(problem.errors));
  assert.equal((await client.getUser(user.id)).address.city, "Potsdam");

  const events = await client.events(user.id);
  assert.ok(events.some((event) => event.type === "user_updated"), JSON.stringify(events.map((e) => e.type)));
});
