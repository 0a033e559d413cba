// Search by external_id, e-mail, provider user id or gateway id. The term stays in the page:
// it never goes into the console's URL (only the API request carries it), and results show
// masked data.
import { badge, h, replace, table } from "../dom.ts";
import type { Json } from "../api.ts";
import { describe } from "../reason.ts";
import type { Session } from "../session.ts";

const BY: { value: string; label: string }[] = [
  { value: "external_id", label: "external id" },
  { value: "email", label: "e-mail" },
  { value: "provider_user_id", label: "provider user id" },
  { value: "id", label: "gateway id" },
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function searchPage(session: Session, page: HTMLElement): Promise<void> {
  const by = h("select", { id: "search-by" }, ...BY.map((b) => h("option", { value: b.value }, b.label))) as HTMLSelectElement;
  const term = h("input", { type: "search", id: "search-term", autocomplete: "off", placeholder: "search term" }) as HTMLInputElement;
  const results = h("div", { id: "search-results" });
  const go = async () => {
    const value = term.value.trim();
    if (!value) return replace(results, h("p", { class: "error" }, "Type something to search for."));
    replace(results, h("p", { class: "loading" }, "Searching…"));
    try {
      let users: Json[];
      if (by.value === "id") {
        if (!UUID.test(value)) return replace(results, h("p", { class: "error" }, "A gateway id is a UUID."));
        users = [await session.api.user(value, "masked")];
      } else {
        users = (await session.api.users({ [by.value]: value })).data ?? [];
      }
      replace(
        results,
        users.length === 0
          ? h("p", { class: "quiet" }, "No user found.")
          : table(
              ["gateway id", "external id", "e-mail (masked)", "status", "providers"],
              users.map((u) => [
                h("a", { href: `#/user/${u.id}`, class: "mono" }, u.id),
                u.external_id ?? "—",
                u.email ?? "—",
                badge(u.status),
                ((u.links ?? []) as Json[]).map((l) => `${l.provider}: ${l.status}`).join(", "),
              ]),
              { id: "results-table" },
            ),
      );
    } catch (problem) {
      replace(results, h("p", { class: "error" }, describe(problem)));
    }
  };
  const button = h("button", { type: "button", id: "search-go", class: "primary", onclick: () => void go() }, "Search");
  term.addEventListener("keydown", (event) => {
    if ((event as KeyboardEvent).key === "Enter") void go();
  });
  replace(page, h("h1", {}, "Search"), h("div", { class: "filters" }, h("label", {}, "By ", by), term, button), results);
  term.focus();
}
