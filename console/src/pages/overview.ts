// Overview: links by status per provider, the drift report's kinds, failed jobs, webhook
// verification failures in the last hour, the last reconciliation pass (GET /v1/ops/overview).
import { h, replace, table, when } from "../dom.ts";
import type { Json } from "../api.ts";
import type { Session } from "../session.ts";

function counts(byKind: Json | undefined, link?: (kind: string) => string): HTMLElement {
  const entries = Object.entries(byKind ?? {}).filter(([, n]) => Number(n) > 0);
  if (entries.length === 0) return h("p", { class: "quiet" }, "none");
  return table(
    ["kind", "count"],
    entries.map(([kind, n]) => [link ? h("a", { href: link(kind) }, kind) : kind, String(n)]),
  );
}

export async function overviewPage(session: Session, page: HTMLElement): Promise<void> {
  const overview = await session.api.overview();
  const links: Json = overview.links_by_status ?? {};
  const statuses = [...new Set(Object.values(links).flatMap((s) => Object.keys(s as Json)))].sort();
  const run: Json | null = overview.last_reconciliation ?? null;
  const summary: Json = run?.summary ?? run ?? {};
  const webhooks: Json = overview.webhook_verification_failures ?? {};
  replace(
    page,
    h("h1", {}, "Overview"),
    h("p", { class: "quiet" }, `Generated ${when(overview.generated_at)}`),
    h(
      "div",
      { class: "cards" },
      h(
        "section",
        { class: "card wide", id: "links-by-status" },
        h("h2", {}, "Links by status"),
        table(
          ["provider", ...statuses],
          Object.entries(links).map(([provider, byStatus]) => [
            provider,
            ...statuses.map((status) => String((byStatus as Json)[status] ?? 0)),
          ]),
        ),
      ),
      h(
        "section",
        { class: "card", id: "drift-counts" },
        h("h2", {}, "Drift ", h("span", { class: "total" }, String(overview.drift?.total ?? 0))),
        counts(overview.drift?.by_kind, () => "#/drift"),
      ),
      h(
        "section",
        { class: "card", id: "failed-job-counts" },
        h("h2", {}, "Failed jobs ", h("span", { class: "total" }, String(overview.failed_jobs?.total ?? 0))),
        counts(overview.failed_jobs?.by_kind, () => "#/drift"),
      ),
      h(
        "section",
        { class: "card", id: "webhook-failures" },
        h(
          "h2",
          {},
          `Webhook verification failures (last ${webhooks.window_minutes ?? 60} min) `,
          h("span", { class: "total" }, String(webhooks.total ?? 0)),
        ),
        counts(webhooks.by_provider),
      ),
      h(
        "section",
        { class: "card", id: "last-reconciliation" },
        h("h2", {}, "Last reconciliation pass"),
        run
          ? table(
              ["started", "trigger", "checked", "changed", "drift", "missing", "errors", "ms"],
              [[
                when(run.started_at),
                run.trigger ?? "—",
                String(summary.checked ?? 0),
                String(summary.status_changed_count ?? 0),
                String(summary.drift ?? 0),
                String(summary.missing ?? 0),
                String(summary.errors ?? 0),
                String(summary.duration_ms ?? "—"),
              ]],
            )
          : h("p", { class: "quiet" }, "none yet"),
      ),
    ),
  );
}
