// A user: links with provider ids, statuses and next actions; personal data masked by default
// (GET /v1/users/{id}?view=masked) and revealed one field at a time (POST …/reveal, recorded as
// a pii_revealed event); the audit trail as one timeline with its kinds told apart.
import { badge, h, replace, table, when } from "../dom.ts";
import type { Json } from "../api.ts";
import { describe, withReason } from "../reason.ts";
import type { Session } from "../session.ts";

/// The revealable fields, as POST /v1/users/{id}/reveal names them, and how to show each.
const FIELDS: { field: string; label: string; show(user: Json): string }[] = [
  { field: "first_name", label: "First name", show: (u) => u.name?.first ?? "—" },
  { field: "last_name", label: "Last name", show: (u) => u.name?.last ?? "—" },
  { field: "email", label: "E-mail", show: (u) => u.email ?? "—" },
  { field: "phone", label: "Phone", show: (u) => u.phone ?? "—" },
  { field: "date_of_birth", label: "Date of birth", show: (u) => u.date_of_birth ?? "—" },
  { field: "address", label: "Address", show: (u) => address(u.address) },
  { field: "tax_ids", label: "Tax ids", show: (u) => taxIds(u.tax_ids) },
];

function address(value: Json | undefined | null): string {
  if (!value) return "—";
  return [value.line1, value.line2, value.postal_code, value.city, value.region, value.country].filter(Boolean).join(", ");
}

function taxIds(value: Json[] | undefined | null): string {
  if (!value || value.length === 0) return "—";
  return value.map((t) => `${t.type ?? ""} ${t.number ?? ""}${t.country ? ` (${t.country})` : ""}`.trim()).join("; ");
}

/// What a revealed value looks like in the user's shape, so `show` can render it.
function asUser(field: string, value: unknown): Json {
  switch (field) {
    case "first_name":
      return { name: { first: value } };
    case "last_name":
      return { name: { last: value } };
    default:
      return { [field]: value };
  }
}

/// One line of detail per event category (the trail never holds personal data).
function detail(event: Json): string {
  // The event's own fields sit beside id, type, at and category.
  const { id: _id, type: _type, at: _at, category: _category, ...d } = event;
  switch (event.category) {
    case "provider_call":
      return `${d.provider ?? ""} ${d.operation ?? ""} → HTTP ${d.http_status ?? "—"} in ${d.latency_ms ?? "—"} ms${d.outcome ? ` (${d.outcome})` : ""}`;
    case "webhook":
      return `${d.provider ?? ""} ${d.event_type ?? ""} ${d.provider_event_id ?? ""}`.trim();
    case "status_change":
      return `${d.provider ?? ""} ${d.from ?? "—"} → ${d.to ?? "—"}${d.source ? ` by ${d.source}` : ""}`;
    case "notification":
      return `to ${d.subscriber ?? "—"} → HTTP ${d.http_status ?? "—"} (attempt ${d.attempt ?? "—"})`;
    case "operator":
      return `${d.key_name ?? ""}: ${d.reason ?? ""}${d.fields ? ` [${(d.fields as string[]).join(", ")}]` : ""}`;
    default:
      return Object.entries(d)
        .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
        .join(" ");
  }
}

export async function userPage(session: Session, page: HTMLElement, id: string): Promise<void> {
  if (!id) {
    replace(page, h("p", {}, "Open a user from Search or from the drift report."));
    return;
  }
  const [user, requirements, firstEvents] = await Promise.all([session.api.user(id, "masked"), session.api.requirements(id), session.api.events(id)]);
  // The canonical fields sit at the top level of the user, beside id, status and links.
  const profile: Json = user;
  const canSync = session.can("ops") || session.can("users:write");
  const rerender = () => userPage(session, page, id);

  const notice = h("p", { id: "action-result", class: "notice" });
  const actionsByProvider = new Map<string, Json[]>(((requirements.data ?? []) as Json[]).map((r) => [r.provider, r.actions ?? []]));

  const links = table(
    ["provider", "provider user id", "status", "provider status", "next actions", "last synced", "last error", ""],
    ((user.links ?? []) as Json[]).map((link) => [
      link.provider,
      h("span", { class: "mono" }, link.provider_user_id ?? "—"),
      badge(link.status),
      link.provider_status ?? "—",
      h("ul", { class: "actions" }, ...(actionsByProvider.get(link.provider) ?? []).map((a) => h("li", {}, badge(a.next_action), " ", h("span", { class: "mono" }, a.code), " ", [...(a.fields ?? []), ...(a.document_types ?? [])].join(", ")))),
      when(link.last_synced_at),
      link.last_error ? `${link.last_error.code}: ${link.last_error.message}` : "—",
      canSync
        ? h("button", {
            type: "button",
            class: "action sync",
            onclick: async () => {
              const synced = await withReason(`Sync ${link.provider} link`, `Read this user's status from ${link.provider} now.`, (reason) =>
                session.api.syncUser(id, { provider: link.provider, reason }),
              );
              if (synced) {
                await rerender();
                replace(document.getElementById("action-result") ?? notice, `Synced ${link.provider}.`);
              }
            },
          }, "Sync now")
        : null,
    ]),
    { id: "links-table" },
  );

  const personal = table(
    ["field", "value", ""],
    FIELDS.map(({ field, label, show }) => {
      const value = h("span", { class: "masked", "data-field": field }, show(profile));
      const reveal = h("button", {
        type: "button",
        class: "reveal",
        "data-field": field,
        onclick: async () => {
          const answer = await withReason(`Reveal ${label.toLowerCase()}`, "The value is shown once here; the reveal is written to the user's audit trail.", (reason) =>
            session.api.reveal(id, [field], reason),
          );
          if (!answer) return;
          replace(value, show(asUser(field, answer.values?.[field])));
          value.className = "revealed";
          reveal.remove();
          await refreshTimeline();
        },
      }, "Reveal");
      return [label, value, session.can("users:read") ? reveal : null];
    }),
    { id: "personal-table" },
  );

  const timeline = h("ol", { class: "timeline", id: "timeline" });
  let cursor: string | null = firstEvents.next_cursor ?? null;
  const more = h("button", { type: "button", id: "more-events" }, "Older events…") as HTMLButtonElement;
  const renderEvents = (events: Json[]) => {
    for (const event of events) {
      const category = event.category ?? "other";
      timeline.appendChild(
        h("li", { class: `event category-${category}`, "data-type": event.type }, h("time", {}, when(event.at)), badge(category), h("strong", {}, event.type), " ", h("span", { class: "detail" }, detail(event))),
      );
    }
    more.hidden = !cursor;
  };
  const refreshTimeline = async () => {
    const events = await session.api.events(id);
    replace(timeline);
    cursor = events.next_cursor ?? null;
    renderEvents(events.data ?? []);
  };
  more.addEventListener("click", async () => {
    if (!cursor) return;
    try {
      const events = await session.api.events(id, cursor);
      cursor = events.next_cursor ?? null;
      renderEvents(events.data ?? []);
    } catch (problem) {
      replace(notice, describe(problem));
    }
  });
  renderEvents(firstEvents.data ?? []);

  replace(
    page,
    h("h1", {}, "User ", h("span", { class: "mono", id: "user-id" }, user.id)),
    h("p", {}, "external id ", h("span", { class: "mono" }, profile.external_id ?? "—"), " · status ", badge(user.status), " · created ", when(user.created_at)),
    notice,
    h("h2", {}, "Links"),
    links,
    h("h2", {}, "Personal data (masked)"),
    personal,
    h("h2", {}, "Timeline"),
    timeline,
    more,
  );
}
