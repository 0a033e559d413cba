// What the console asks of the gateway, through the typed client (clients/typescript, bundled):
// the same /v1 endpoints, with the same bearer key and scopes, as any client. Every call the
// console makes is in this file.
import { createGatewayClient, GatewayProblem, unwrap, type FetchResult, type RevealableField } from "../../clients/typescript/src/index.ts";

export { GatewayProblem };

export type Scope = "users:read" | "users:write" | "ops";

export interface Me {
  key_name: string;
  scopes: Scope[];
}

export type Json = Record<string, any>;

export interface Api {
  me(): Promise<Me>;
  overview(): Promise<Json>;
  reconciliation(): Promise<Json>;
  runReconciliation(): Promise<Json>;
  failedJobs(filter: { kind?: string | undefined; provider?: string | undefined }): Promise<Json>;
  retryJob(id: string, reason: string): Promise<Json>;
  retryJobs(request: { kind: string; provider?: string | undefined; reason: string }): Promise<Json>;
  syncUser(id: string, request: { provider?: string; reason?: string }): Promise<Json>;
  user(id: string, view: "masked" | "full"): Promise<Json>;
  users(query: Record<string, string>): Promise<Json>;
  requirements(id: string): Promise<Json>;
  events(id: string, cursor?: string): Promise<Json>;
  reveal(id: string, fields: string[], reason: string): Promise<Json>;
}

/// The client's typed helpers where it has them (me, getUser, reveal); otherwise its raw
/// openapi-fetch client seen without path types, so an endpoint of the console's contract that
/// the committed schema does not list yet still goes through the same client, headers and
/// problem handling.
interface Params {
  params?: { path?: Record<string, string>; query?: Record<string, string | undefined> };
  body?: unknown;
}
interface UntypedRaw {
  GET(path: string, init?: Params): Promise<FetchResult<Json>>;
  POST(path: string, init?: Params): Promise<FetchResult<Json>>;
}

/// Query values left empty are not sent.
function query(values: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && v !== "")) as Record<string, string>;
}

export function createApi(apiKey: string): Api {
  const client = createGatewayClient({ baseUrl: location.origin, apiKey });
  const raw = client.raw as unknown as UntypedRaw;
  const get = async (path: string, init?: Params) => unwrap(await raw.GET(path, init));
  const post = async (path: string, init?: Params) => unwrap(await raw.POST(path, init));
  const id = (value: string) => ({ path: { id: value } });
  return {
    me: async () => (await client.me()) as Me,
    overview: () => get("/v1/ops/overview"),
    reconciliation: () => get("/v1/reconciliation"),
    runReconciliation: () => post("/v1/reconciliation/runs"),
    failedJobs: (filter) => get("/v1/jobs", { params: { query: query({ state: "failed", limit: "100", ...filter }) } }),
    retryJob: (job, reason) => post("/v1/jobs/{id}/retry", { params: id(job), body: { reason } }),
    retryJobs: (request) => post("/v1/jobs/retry", { body: request }),
    syncUser: (user, request) => post("/v1/users/{id}/sync", { params: id(user), body: request }),
    user: async (user, view) => (view === "masked" ? await client.getUser(user, { view }) : await client.getUser(user)) as Json,
    users: (values) => get("/v1/users", { params: { query: query({ view: "masked", limit: "25", ...values }) } }),
    requirements: (user) => get("/v1/users/{id}/requirements", { params: id(user) }),
    events: (user, cursor) => get("/v1/users/{id}/events", { params: { ...id(user), query: query({ limit: "100", cursor }) } }),
    reveal: async (user, fields, reason) => ({ values: await client.reveal(user, fields as RevealableField[], reason) }),
  };
}
