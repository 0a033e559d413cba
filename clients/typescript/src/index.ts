// The onboarding gateway's TypeScript client.
//
// The types (`./generated/schema.d.ts`) are generated from openapi/openapi.json by
// openapi-typescript and the calls are openapi-fetch's (`client.raw`, typed by path, method,
// parameters and bodies). This file adds only what the generated client cannot express:
// Idempotency-Key values, problem documents as a typed error, cursor paging as an async
// iterator, and short typed helpers for the common calls.
//
// It uses nothing but `fetch`, `URL`, `Headers` and `crypto.getRandomValues`, so it runs in
// browsers (the ops console bundles this folder) as well as in Node 20+.

import createClient, { type Client } from "openapi-fetch";
import type { components, operations, paths } from "./generated/schema.js";

export type { components, operations, paths } from "./generated/schema.js";

/** The API's named schemas, e.g. `Schemas["UserResource"]`. */
export type Schemas = components["schemas"];
export type CanonicalUser = Schemas["CanonicalUser"];
export type User = Schemas["UserResource"];
/** A user as `view=masked` answers it: the same members, personal values masked. */
export type MaskedUser = Schemas["MaskedUserResource"];
/** A page of users: full ones, or masked ones with `view: "masked"`. */
export type UserList = Schemas["UserList"];
export type View = Schemas["View"];
/** `GET /v1/me`: the key's name and scopes. */
export type Me = Schemas["MeResource"];
export type RevealableField = Schemas["RevealableField"];
/** The value `reveal` answers for each field (`null` when the user has none). */
export interface RevealedValues {
  first_name: string;
  middle_name: string;
  last_name: string;
  email: string;
  phone: string;
  date_of_birth: string;
  birth_place: Schemas["BirthPlace"];
  address: Schemas["Address"];
  identity_document: Schemas["IdentityDocument"];
  tax_ids: Schemas["TaxId"][];
  metadata: Record<string, unknown>;
}
export type Event = Schemas["EventResource"];
export type Job = Schemas["JobResource"];
export type JobList = Schemas["JobList"];
export type Provider = Schemas["ProviderResource"];
export type RetryJobsRequest = Schemas["RetryJobsRequest"];
export type RetryJobsResponse = Schemas["RetryJobsResponse"];
export type SyncRequest = Schemas["SyncRequest"];
export type LinkStatus = Schemas["LinkStatus"];
/** `GET /v1/ops/overview`, with `links_by_status` typed: provider → status → count. */
export type Overview = Omit<Schemas["Overview"], "links_by_status"> & {
  links_by_status: Record<string, Partial<Record<LinkStatus, number>>>;
};
export type ProblemDocument = Schemas["ProblemDocument"];

/** One entry of a problem document's `errors[]`: the offending field by JSON path. */
export interface FieldError {
  /** JSON path of the field in the request body, e.g. `tax_ids[0].number`. */
  field: string;
  code?: string;
  message: string;
}

/** The raw, fully typed openapi-fetch client. */
export type RawClient = Client<paths>;

/**
 * A JSON merge patch (RFC 7396) of `T`: every field optional, `null` removes it, objects are
 * patched field by field, arrays (and scalars) are replaced whole.
 */
export type MergePatch<T> = {
  [K in keyof T]?: (NonNullable<T[K]> extends readonly unknown[]
    ? T[K]
    : NonNullable<T[K]> extends object
      ? MergePatch<NonNullable<T[K]>>
      : T[K]) | null;
};

export interface GatewayClientOptions {
  /** The gateway's origin, e.g. `https://gateway.example.com` (no `/v1`). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey: string;
  /** A `fetch` to use instead of `globalThis.fetch` (tests, instrumentation). */
  fetch?: (input: Request) => Promise<Response>;
}

/**
 * A problem document (RFC 9457) answered by the gateway, or any other non-2xx answer, as an
 * `Error` a caller can branch on: `status`, the stable `code`, the `requestId` to quote to
 * support, and `errors[]` naming each offending field.
 */
export class GatewayProblem extends Error {
  override readonly name = "GatewayProblem";
  readonly status: number;
  /** Stable machine-readable code (`validation_failed`, `user_already_exists`, ...). */
  readonly code: string;
  /** The request's id (`request_id`, else the `x-request-id` header), if the answer had one. */
  readonly requestId: string | undefined;
  readonly errors: FieldError[];
  /** The answer's body as parsed (a problem document, or text when it was not JSON). */
  readonly body: unknown;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    requestId?: string | undefined;
    errors?: FieldError[];
    body?: unknown;
  }) {
    super(init.message);
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId;
    this.errors = init.errors ?? [];
    this.body = init.body;
  }

  /** The error about `field` (a JSON path such as `address.country`), if there is one. */
  field(field: string): FieldError | undefined {
    return this.errors.find((error) => error.field === field);
  }

  /** Builds the error from a non-2xx answer and its parsed body (as openapi-fetch gives it). */
  static fromResponse(response: Response, body: unknown): GatewayProblem {
    const headerRequestId = response.headers.get("x-request-id") ?? undefined;
    if (isProblemDocument(body)) {
      return new GatewayProblem({
        status: response.status,
        code: body.code,
        message: `${response.status} ${body.code}: ${body.detail}`,
        requestId: body.request_id || headerRequestId,
        errors: (body.errors ?? []).map(toFieldError),
        body,
      });
    }
    // Not a problem document: a proxy's error page, an empty body. Keep what there is.
    const text = typeof body === "string" ? body.slice(0, 200) : "";
    return new GatewayProblem({
      status: response.status,
      code: `http_${response.status}`,
      message: `${response.status} ${response.statusText}${text ? `: ${text}` : ""}`,
      requestId: headerRequestId,
      body,
    });
  }
}

function isProblemDocument(body: unknown): body is ProblemDocument {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as { code?: unknown }).code === "string" &&
    typeof (body as { status?: unknown }).status === "number"
  );
}

function toFieldError(error: Schemas["FieldErrorDocument"]): FieldError {
  return { field: error.field, code: error.code, message: error.message };
}

/** What openapi-fetch answers: `data` on 2xx, `error` (the parsed body) otherwise. */
export interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** A successful answer with what its headers say. */
export interface Answer<T> {
  data: T;
  response: Response;
  /** `Idempotent-Replayed: true`: the first answer to this Idempotency-Key, replayed. */
  replayed: boolean;
  requestId: string | undefined;
}

/** The data of a successful answer; throws `GatewayProblem` for any other. */
export function unwrap<T>(result: FetchResult<T>): T {
  return unwrapAnswer(result).data;
}

/** Like `unwrap`, keeping the response and whether it was an idempotent replay. */
export function unwrapAnswer<T>(result: FetchResult<T>): Answer<T> {
  const { response } = result;
  if (!response.ok || result.error !== undefined) {
    throw GatewayProblem.fromResponse(response, result.error);
  }
  return {
    data: result.data as T,
    response,
    replayed: response.headers.get("idempotent-replayed") === "true",
    requestId: response.headers.get("x-request-id") ?? undefined,
  };
}

/**
 * A fresh value for the `Idempotency-Key` header (a random UUID v4). Make one per user action
 * and send the same one on every retry of that action: the gateway then answers a retry with
 * the first answer (`Idempotent-Replayed: true`) instead of doing the work twice.
 */
export function idempotencyKey(): string {
  // getRandomValues, not randomUUID: browsers offer randomUUID only in secure contexts.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40; // version 4
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Paging. A paged path is a GET taking a `cursor` query parameter and answering
// `{data: [...], next_cursor}`; these types pick them, their items, queries and path parameters.
type PageShape = { data: unknown[]; next_cursor?: string | null };
type JsonOk<Op> = Op extends { responses: { 200: { content: { "application/json": infer B } } } }
  ? B
  : never;
type GetOf<P extends keyof paths> = paths[P] extends { get: infer Op } ? Op : never;
type QueryOf<P extends keyof paths> = NonNullable<
  GetOf<P> extends { parameters: { query?: infer Q } } ? Q : never
>;
// keyof never is every key; a GET without a query (`query?: never`) has none.
type KnownKeys<T> = [T] extends [never] ? never : keyof T;

/** The paths `paginate` can follow: `/v1/users`, `/v1/jobs`, `/v1/users/{id}/events`, ... */
export type PagedPath = {
  [P in keyof paths]: JsonOk<GetOf<P>> extends PageShape
    ? "cursor" extends KnownKeys<QueryOf<P>>
      ? P
      : never
    : never;
}[keyof paths];

/** The items of one page of `P`. */
export type PageItem<P extends PagedPath> = JsonOk<GetOf<P>> extends { data: (infer I)[] }
  ? I
  : never;
/** The query of `P` without `cursor` (paginate sets it). */
export type PageQuery<P extends PagedPath> = Omit<QueryOf<P>, "cursor">;
type PagePathParams<P extends PagedPath> = GetOf<P> extends { parameters: { path: infer A } }
  ? A
  : never;
/** `[pathParams]` when `P` has path parameters (`{id}`), else nothing. */
export type PagePathArgs<P extends PagedPath> = [PagePathParams<P>] extends [never]
  ? []
  : [PagePathParams<P>];

/** Optional parts of a write. */
export interface WriteOptions {
  /** Sent as `Idempotency-Key`; make it with `idempotencyKey()` and reuse it on retries. */
  idempotencyKey?: string;
}

function idempotencyHeader(options: WriteOptions | undefined): { "Idempotency-Key"?: string } {
  return options?.idempotencyKey === undefined ? {} : { "Idempotency-Key": options.idempotencyKey };
}

/** Creates the client: the raw typed client as `.raw`, and helpers that throw `GatewayProblem`. */
export function createGatewayClient(options: GatewayClientOptions) {
  const raw: RawClient = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    headers: { Authorization: `Bearer ${options.apiKey}` },
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
  });

  // One GET of any paged path. The path, query and path parameters are checked at the call
  // site (paginate's signature); this inner call only needs to pass them on.
  const getPage = raw.GET as unknown as (
    path: string,
    init: { params: { query: Record<string, unknown>; path?: unknown } },
  ) => Promise<FetchResult<PageShape>>;

  /**
   * Every item of a paged list, page after page (following `next_cursor` until it is null), as
   * an async iterator: `for await (const user of client.paginate("/v1/users", {limit: 100}))`.
   * Pages are fetched as the loop asks for them; stopping the loop stops the fetching.
   */
  async function* paginate<P extends PagedPath>(
    path: P,
    query?: PageQuery<P>,
    ...pathParams: PagePathArgs<P>
  ): AsyncGenerator<PageItem<P>, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = unwrap(
        await getPage(path, {
          params: {
            query: { ...(query ?? {}), ...(cursor === undefined ? {} : { cursor }) },
            ...(pathParams.length > 0 ? { path: pathParams[0] } : {}),
          },
        }),
      );
      for (const item of page.data) yield item as PageItem<P>;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  /**
   * `GET /v1/users/{id}`: the user with its provider links; with `{view: "masked"}` every
   * personal value masked (`j***@e***.com`), to show by default and `reveal` per field.
   */
  async function getUser(id: string, options?: { view?: "full" }): Promise<User>;
  async function getUser(id: string, options: { view: "masked" }): Promise<MaskedUser>;
  async function getUser(id: string, options: { view?: View } = {}): Promise<User | MaskedUser> {
    const query = options.view === undefined ? {} : { view: options.view };
    return unwrap(await raw.GET("/v1/users/{id}", { params: { path: { id }, query } }));
  }

  return {
    raw,
    paginate,

    /** `POST /v1/users`: validate, store and route a canonical user. */
    async createUser(body: CanonicalUser, write?: WriteOptions): Promise<User> {
      return unwrap(
        await raw.POST("/v1/users", { body, params: { header: idempotencyHeader(write) } }),
      );
    },

    /** `GET /v1/me`: the key's name and scopes (a console shows only what they allow). */
    async me(): Promise<Me> {
      return unwrap(await raw.GET("/v1/me"));
    },

    getUser,

    /**
     * `POST /v1/users/{id}/reveal` (`users:read`): the unmasked values of `fields`. The gateway
     * records the reveal (field names, `reason`, the key's name; never the values) in the
     * user's audit trail as `pii_revealed`.
     */
    async reveal<F extends RevealableField>(
      id: string,
      fields: readonly F[],
      reason: string,
    ): Promise<{ [K in F]: RevealedValues[K] | null }> {
      const answer = unwrap(
        await raw.POST("/v1/users/{id}/reveal", {
          params: { path: { id } },
          body: { fields: [...fields], reason },
        }),
      );
      return answer.values as { [K in F]: RevealedValues[K] | null };
    },

    /** `PATCH /v1/users/{id}` with a JSON merge patch (RFC 7396). */
    async patchUser(id: string, patch: MergePatch<CanonicalUser>, write?: WriteOptions): Promise<User> {
      return unwrap(
        await raw.PATCH("/v1/users/{id}", {
          params: { path: { id }, header: idempotencyHeader(write) },
          body: patch as Record<string, unknown>,
          headers: { "Content-Type": "application/merge-patch+json" },
        }),
      );
    },

    /** `GET /v1/users`: one page of users (use `paginate("/v1/users", query)` for all). */
    async listUsers(query: NonNullable<operations["list_users"]["parameters"]["query"]> = {}): Promise<UserList> {
      return unwrap(await raw.GET("/v1/users", { params: { query } }));
    },

    /**
     * `POST /v1/users/{id}/sync` (`users:write` or `ops`): fetch the links' statuses from their
     * providers now (only `provider`'s when given); `reason` goes into the user's audit trail
     * with the key's name (`sync_requested`).
     */
    async syncUser(id: string, request: SyncRequest = {}): Promise<User> {
      return unwrap(await raw.POST("/v1/users/{id}/sync", { params: { path: { id } }, body: request }));
    },

    /** `GET /v1/jobs` (`ops`): one page of background jobs, e.g. `{state: "failed"}`. */
    async listJobs(query: NonNullable<operations["list_jobs"]["parameters"]["query"]> = {}): Promise<JobList> {
      return unwrap(await raw.GET("/v1/jobs", { params: { query } }));
    },

    /**
     * `POST /v1/jobs/{id}/retry` (`ops`): queue a failed job again; answers the job. `reason`
     * goes into the user's audit trail with the key's name (`job_redriven`).
     */
    async retryJob(id: string, reason?: string): Promise<Job> {
      const body = reason === undefined ? {} : { body: { reason } };
      return unwrap(await raw.POST("/v1/jobs/{id}/retry", { params: { path: { id } }, ...body }));
    },

    /**
     * `POST /v1/jobs/retry` (`ops`): queue again the failed jobs of `kind` (and `provider`),
     * at most 500 a call, each recorded with `reason`; answers `{retried, remaining}`.
     */
    async retryJobs(request: RetryJobsRequest): Promise<RetryJobsResponse> {
      return unwrap(await raw.POST("/v1/jobs/retry", { body: request }));
    },

    /**
     * `GET /v1/ops/overview` (`ops`): links by status per provider, the drift report's and the
     * failed jobs' counts by kind, webhook verification failures in the last hour, the last
     * reconciliation pass.
     */
    async overview(): Promise<Overview> {
      return unwrap(await raw.GET("/v1/ops/overview")) as Overview;
    },

    /** `GET /v1/users/{id}/events`: the user's whole audit trail, oldest first. */
    async events(id: string): Promise<Event[]> {
      const events: Event[] = [];
      for await (const event of paginate("/v1/users/{id}/events", { limit: 100 }, { id })) {
        events.push(event);
      }
      return events;
    },
  };
}

export type GatewayClient = ReturnType<typeof createGatewayClient>;
