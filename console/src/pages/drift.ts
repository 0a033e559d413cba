// Drift and failed jobs: the rows of GET /v1/reconciliation and GET /v1/jobs?state=failed,
// filtered by provider and kind, with the actions in place (each asks for a reason): sync a
// link now, re-drive one job, re-drive every failed job of a kind.
import { badge, h, replace, table, when } from "../dom.ts";
import type { Json } from "../api.ts";
import { describe, withReason } from "../reason.ts";
import type { Session } from "../session.ts";

const DRIFT_KINDS = ["status_drift", "missing_at_provider", "stale", "submission_failed", "needs_review", "erasure_follow_up"];

/// Filters survive a re-render of this page (they are not in the URL: kept in memory only).
const filter = { provider: "", kind: "" };

function select(id: string, label: string, options: string[], value: string, change: (v: string) => void): HTMLElement {
  const element = h("select", { id }, h("option", { value: "" }, "all"), ...options.map((o) => h("option", { value: o, selected: o === value }, o))) as HTMLSelectElement;
  element.addEventListener("change", () => change(element.value));
  return h("label", {}, `${label} `, element);
}

function userLink(id: string | undefined): HTMLElement | string {
  return id ? h("a", { href: `#/user/${id}`, class: "mono" }, id) : "—";
}

export async function driftPage(session: Session, page: HTMLElement): Promise<void> {
  const [report, jobs] = await Promise.all([
    session.api.reconciliation(),
    session.api.failedJobs({ kind: DRIFT_KINDS.includes(filter.kind) ? undefined : filter.kind || undefined, provider: filter.provider || undefined }),
  ]);
  // A failure to reload is shown in the page, as on first load.
  const rerender = () => driftPage(session, page).catch((problem) => replace(page, h("p", { class: "error", id: "page-error" }, describe(problem))));
  const canSync = session.can("ops") || session.can("users:write");
  const canRedrive = session.can("ops");

  const driftRows: Json[] = DRIFT_KINDS.flatMap((kind) => ((report[kind]?.data ?? []) as Json[]).map((row) => ({ ...row, kind })));
  const jobRows: Json[] = jobs.data ?? [];
  const providers = [...new Set([...driftRows.map((r) => r.provider), ...jobRows.map((j) => j.payload?.provider)].filter(Boolean))].sort();
  const jobKinds = [...new Set(jobRows.map((j) => j.kind as string))].sort();

  const shownDrift = driftRows.filter((r) => (!filter.provider || r.provider === filter.provider) && (!filter.kind || r.kind === filter.kind));
  const shownJobs = jobRows.filter((j) => (!filter.provider || j.payload?.provider === filter.provider) && (!filter.kind || j.kind === filter.kind));

  const notice = h("p", { id: "action-result", class: "notice" });
  const done = (message: string) => async () => {
    await rerender();
    replace(document.getElementById("action-result") ?? notice, message);
  };

  const syncButton = (row: Json) =>
    canSync
      ? h("button", {
          type: "button",
          class: "action sync",
          onclick: async () => {
            const synced = await withReason(`Sync ${row.provider} link`, `User ${row.user_id}: read the link's status from ${row.provider} now.`, (reason) =>
              session.api.syncUser(row.user_id, { provider: row.provider, reason }),
            );
            if (synced) await done(`Synced ${row.provider} link of ${row.user_id}.`)();
          },
        }, "Sync now")
      : null;

  const redriveButton = (job: Json) =>
    canRedrive
      ? h("button", {
          type: "button",
          class: "action redrive",
          onclick: async () => {
            const retried = await withReason(`Re-drive ${job.kind} job`, `Job ${job.id} goes back on the queue and runs again.`, (reason) => session.api.retryJob(job.id, reason));
            if (retried) await done(`Job ${job.id} re-driven.`)();
          },
        }, "Re-drive")
      : null;

  const redriveKind = (kind: string) =>
    h("button", {
      type: "button",
      class: "action redrive-kind",
      "data-kind": kind,
      onclick: async () => {
        const scope = filter.provider ? ` at ${filter.provider}` : "";
        const answer = await withReason(`Re-drive every failed ${kind} job${scope}`, "At most 500 per call; the answer says how many remain.", (reason) =>
          session.api.retryJobs({ kind, provider: filter.provider || undefined, reason }),
        );
        if (answer) await done(`Re-drove ${answer.retried} ${kind} job(s); ${answer.remaining} remain.`)();
      },
    }, `Re-drive all failed ${kind}`);

  const runPass = canRedrive
    ? h("button", {
        type: "button",
        class: "action run-pass",
        onclick: async () => {
          const run = await session.api.runReconciliation();
          await rerender();
          replace(document.getElementById("action-result") ?? notice, `Reconciliation pass done: ${run.checked ?? run.summary?.checked ?? 0} links checked.`);
        },
      }, "Run a reconciliation pass now")
    : null;

  replace(
    page,
    h("h1", {}, "Drift and failed jobs"),
    h(
      "div",
      { class: "filters" },
      select("filter-provider", "Provider", providers.includes(filter.provider) || !filter.provider ? providers : [...providers, filter.provider], filter.provider, (v) => {
        filter.provider = v;
        void rerender();
      }),
      select("filter-kind", "Kind", [...DRIFT_KINDS, ...jobKinds.filter((k) => !DRIFT_KINDS.includes(k))], filter.kind, (v) => {
        filter.kind = v;
        void rerender();
      }),
      runPass,
    ),
    notice,
    h("h2", {}, `Drift (${shownDrift.length})`),
    shownDrift.length === 0
      ? h("p", { class: "quiet", id: "no-drift" }, "No drift.")
      : table(
          ["kind", "user", "provider", "provider user id", "ours", "provider says", "reason", "last synced", ""],
          shownDrift.map((row) => [
            badge(row.kind),
            userLink(row.user_id),
            row.provider,
            h("span", { class: "mono" }, row.provider_user_id ?? "—"),
            badge(row.status),
            `${row.provider_status ?? "—"}${row.provider_mapped_status ? ` → ${row.provider_mapped_status}` : ""}`,
            row.reason ?? "—",
            when(row.last_synced_at),
            syncButton(row),
          ]),
          { id: "drift-table" },
        ),
    h("h2", {}, `Failed jobs (${shownJobs.length}${jobs.next_cursor ? "+, first 100 shown" : ""})`),
    canRedrive && jobKinds.length > 0 ? h("div", { class: "bulk" }, ...jobKinds.filter((k) => !filter.kind || k === filter.kind).map(redriveKind)) : null,
    shownJobs.length === 0
      ? h("p", { class: "quiet", id: "no-failed-jobs" }, "No failed jobs.")
      : table(
          ["kind", "user", "provider", "attempts", "last error", "updated", ""],
          shownJobs.map((job) => [
            badge(job.kind),
            userLink(job.payload?.user_id),
            job.payload?.provider ?? "—",
            `${job.attempts}/${job.max_attempts}`,
            h("span", { class: "mono" }, job.last_error ?? "—"),
            when(job.updated_at),
            redriveButton(job),
          ]),
          { id: "jobs-table" },
        ),
  );
}
