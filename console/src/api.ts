// What the console asks of the gateway: the same /v1 endpoints, with the same bearer key and
// scopes, as any client. Every call goes through this file.

export type Scope = "users:read" | "users:write" | "ops";

export interface Me {
  key_name: string;
  scopes: Scope[];
}

export interface FieldError {
  field: string;
  code?: string;
  message: string;
}

/// A problem document (RFC 9457) answered by the gateway, or a failure to reach it.
export class Problem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null,
    readonly errors: FieldError[],
  ) {
    super(message);
  }
}

export type Json = Record<string, any>;

export interface Api {
  me(): Promise<Me>;
  overview(): Promise<Json>;
  reconciliation(): Promise<Json>;
  runReconciliation(): Promise<Json>;
  failedJobs(filter: { kind?: string; provider?: string }): Promise<Json>;
  retryJob(id: string, reason: string): Promise<Json>;
  retryJobs(request: { kind: string; provider?: string; reason: string }): Promise<Json>;
  syncUser(id: string, request: { provider?: string; reason?: string }): Promise<Json>;
  user(id: string, view: "masked" | "full"): Promise<Json>;
  users(query: Record<string, string>): Promise<Json>;
  requirements(id: string): Promise<Json>;
  events(id: string, cursor?: string): Promise<Json>;
  reveal(id: string, fields: string[], reason: string): Promise<Json>;
}

async function call(key: string, method: string, path: string, body?: unknown): Promise<Json> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw new Problem(0, "unreachable", `The gateway did not answer: ${String(error)}`, null, []);
  }
  const text = await response.text();
  let json: Json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = {};
  }
  if (!response.ok) {
    throw new Problem(
      response.status,
      json.code ?? `http_${response.status}`,
      json.detail ?? json.title ?? response.statusText,
      json.request_id ?? response.headers.get("x-request-id"),
      Array.isArray(json.errors) ? json.errors : [],
    );
  }
  return json;
}

function query(params: Record<string, string | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

const segment = encodeURIComponent;

export function createApi(key: string): Api {
  return {
    me: () => call(key, "GET", "/v1/me") as Promise<Me>,
    overview: () => call(key, "GET", "/v1/ops/overview"),
    reconciliation: () => call(key, "GET", "/v1/reconciliation"),
    runReconciliation: () => call(key, "POST", "/v1/reconciliation/runs"),
    failedJobs: (filter) => call(key, "GET", `/v1/jobs${query({ state: "failed", limit: "100", ...filter })}`),
    retryJob: (id, reason) => call(key, "POST", `/v1/jobs/${segment(id)}/retry`, { reason }),
    retryJobs: (request) => call(key, "POST", "/v1/jobs/retry", request),
    syncUser: (id, request) => call(key, "POST", `/v1/users/${segment(id)}/sync`, request),
    user: (id, view) => call(key, "GET", `/v1/users/${segment(id)}${query({ view })}`),
    users: (params) => call(key, "GET", `/v1/users${query({ view: "masked", limit: "25", ...params })}`),
    requirements: (id) => call(key, "GET", `/v1/users/${segment(id)}/requirements`),
    events: (id, cursor) => call(key, "GET", `/v1/users/${segment(id)}/events${query({ limit: "100", cursor })}`),
    reveal: (id, fields, reason) => call(key, "POST", `/v1/users/${segment(id)}/reveal`, { fields, reason }),
  };
}
