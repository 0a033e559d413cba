// Shared by the tests: the client for the gateway scripts/typescript.sh started (its URL and
// the development key come in GATEWAY_TEST_URL and GATEWAY_TEST_API_KEY), a request log, a
// valid user per call, problemOf and eventually.

import assert from "node:assert/strict";

import { type CanonicalUser, createGatewayClient, GatewayProblem } from "../src/index.js";

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through scripts/typescript.sh`);
  }
  return value;
}

export const baseUrl = requiredEnv("GATEWAY_TEST_URL");
export const apiKey = requiredEnv("GATEWAY_TEST_API_KEY");

/** Every request the client makes, by method and path with query, so paging can be seen. */
export const requests: string[] = [];
export const client = createGatewayClient({
  baseUrl,
  apiKey,
  fetch: (request) => {
    const url = new URL(request.url);
    requests.push(`${request.method} ${url.pathname}${url.search}`);
    return fetch(request);
  },
});

let serial = 0;
/** A valid adult user in Germany (routed to the simulated Carbn), unique per call. */
export function newUser(): CanonicalUser {
  const unique = `${process.pid}-${Date.now()}-${++serial}`;
  return {
    external_id: `ts-client-${unique}`,
    type: "individual",
    email: `jane.${unique}@example.com`,
    phone: "+49 151 1234 5678",
    name: { first: "Jane", last: "Doe" },
    date_of_birth: "1990-01-15",
    address: { line1: "Invalidenstr. 1", city: "Berlin", postal_code: "10115", country: "DE" },
    identity_document: { type: "passport", number: "C01X00T47", issuing_country: "DE" },
    terms: { version: 3, accepted_at: "2026-11-01T09:30:00Z" },
  };
}

/** Runs `action`, which must throw a GatewayProblem, and returns that problem. */
export async function problemOf(action: () => Promise<unknown>): Promise<GatewayProblem> {
  try {
    await action();
  } catch (error) {
    assert.ok(error instanceof GatewayProblem, `expected a GatewayProblem, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the call to fail with a GatewayProblem");
}

/** Polls `probe` until it answers a value; fails after `seconds` (a bound, not a measurement). */
export async function eventually<T>(what: string, seconds: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    assert.ok(Date.now() < deadline, `${what} within ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
