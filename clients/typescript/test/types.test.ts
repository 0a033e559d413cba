// Compile-time checks of the hand-written types: `tsc` (scripts/typescript.sh runs it before the
// tests) fails when a line below stops type-checking or an @ts-expect-error line starts to.

import assert from "node:assert/strict";
import { test } from "node:test";

import type {
  CanonicalUser,
  Event,
  GatewayClient,
  Job,
  MaskedUser,
  MergePatch,
  PagedPath,
  PageItem,
  PagePathArgs,
  PageQuery,
  User,
} from "../src/index.js";

const pagedPaths: PagedPath[] = [
  "/v1/users",
  "/v1/jobs",
  "/v1/users/{id}/events",
  "/v1/users/{id}/documents",
];
// @ts-expect-error answers a list without next_cursor: not paged
const providers: PagedPath = "/v1/providers";
// @ts-expect-error takes no cursor: not paged
const reconciliation: PagedPath = "/v1/reconciliation";

const users: PageItem<"/v1/users"> extends User ? (User extends PageItem<"/v1/users"> ? true : false) : false = true;
const events: PageItem<"/v1/users/{id}/events"> extends Event ? true : false = true;
const jobs: PageItem<"/v1/jobs"> extends Job ? true : false = true;

const usersQuery: PageQuery<"/v1/users"> = { email: "jane@example.com", limit: 100 };
// @ts-expect-error paginate sets the cursor itself
const cursorQuery: PageQuery<"/v1/users"> = { cursor: "AAAAAAAAAAAAAAAAAAAAAA" };
// @ts-expect-error not a filter of /v1/users
const unknownFilter: PageQuery<"/v1/users"> = { colour: "blue" };

const noPathParams: PagePathArgs<"/v1/users"> = [];
const eventPathParams: PagePathArgs<"/v1/users/{id}/events"> = [{ id: "0193a5c2-7f7e-7c1a-9d1e-5b2f0c3a4d5e" }];
// @ts-expect-error the events path needs its {id}
const missingPathParams: PagePathArgs<"/v1/users/{id}/events"> = [];

const patch: MergePatch<CanonicalUser> = { address: { line2: null, city: "Potsdam" }, tax_ids: [] };
// @ts-expect-error a merge patch still types its fields
const badPatch: MergePatch<CanonicalUser> = { address: { city: 42 } };

// The helpers' answers, typed by what was asked (never called: only type-checked).
declare const gateway: GatewayClient;
const fullUser = (): Promise<User> => gateway.getUser("id");
const maskedUser = (): Promise<MaskedUser> => gateway.getUser("id", { view: "masked" });
const revealed = async (): Promise<{ email: string | null; tax_ids: { number: string }[] | null }> =>
  gateway.reveal("id", ["email", "tax_ids"], "ticket 1");
const notAsked = async () =>
  // @ts-expect-error only the fields asked for are in the answer
  (await gateway.reveal("id", ["email"], "ticket 1")).address;
// @ts-expect-error not a field a reveal takes
const notRevealable = () => gateway.reveal("id", ["password"], "ticket 1");

test("the hand-written types compile as stated (checked by tsc)", () => {
  assert.ok([pagedPaths, providers, reconciliation, users, events, jobs, usersQuery, cursorQuery,
    unknownFilter, noPathParams, eventPathParams, missingPathParams, patch, badPatch, fullUser,
    maskedUser, revealed, notAsked, notRevealable].length > 0);
});
