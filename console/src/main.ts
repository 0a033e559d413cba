// The ops console: a key to sign in, then the pages an operator needs, in that order:
// Overview, Drift and failed jobs, a User, Search. Routes are hash routes carrying ids only
// (#/user/<gateway id>), never a search term or any personal data.
import "./app.css";
import { byId, h, replace } from "./dom.ts";
import { describe } from "./reason.ts";
import { signIn, signOut, storedKey, type Session } from "./session.ts";
import type { Scope } from "./api.ts";
import { overviewPage } from "./pages/overview.ts";
import { driftPage } from "./pages/drift.ts";
import { userPage } from "./pages/user.ts";
import { searchPage } from "./pages/search.ts";

interface Route {
  path: string;
  title: string;
  /// Shown (in the menu and at all) only to a key with this scope.
  scope: Scope;
  render(session: Session, page: HTMLElement, id?: string): Promise<void>;
}

const ROUTES: Route[] = [
  { path: "overview", title: "Overview", scope: "ops", render: overviewPage },
  { path: "drift", title: "Drift and failed jobs", scope: "ops", render: driftPage },
  { path: "user", title: "User", scope: "users:read", render: (s, p, id) => userPage(s, p, id ?? "") },
  { path: "search", title: "Search", scope: "users:read", render: searchPage },
];

let current: Session | null = null;

function loginPage(message?: string): void {
  const key = h("input", { type: "password", id: "api-key", autocomplete: "off", spellcheck: "false", placeholder: "API key" }) as HTMLInputElement;
  const error = h("p", { class: "error", id: "login-error" }, message);
  const submit = h("button", { type: "button", id: "sign-in", class: "primary" }, "Sign in") as HTMLButtonElement;
  const go = async () => {
    submit.disabled = true;
    replace(error);
    try {
      current = await signIn(key.value.trim());
      key.value = "";
      route();
    } catch (problem) {
      replace(error, describe(problem));
    } finally {
      submit.disabled = false;
    }
  };
  submit.addEventListener("click", go);
  key.addEventListener("keydown", (event) => {
    if ((event as KeyboardEvent).key === "Enter") void go();
  });
  replace(byId("nav"));
  replace(byId("who"));
  replace(
    byId("page"),
    h(
      "section",
      { class: "login" },
      h("h1", {}, "Sign in"),
      h("p", {}, "Paste an API key. It stays in this tab (session storage) and is sent only as the bearer header to this gateway."),
      h("label", {}, "API key ", key),
      submit,
      error,
    ),
  );
  key.focus();
}

function header(session: Session, active: string): void {
  replace(
    byId("nav"),
    ...ROUTES.filter((r) => r.path !== "user" && session.can(r.scope)).map((r) =>
      h("a", { href: `#/${r.path}`, class: r.path === active ? "active" : undefined }, r.title),
    ),
  );
  const out = h("button", { type: "button", id: "sign-out" }, "Sign out");
  out.addEventListener("click", () => {
    signOut();
    current = null;
    location.hash = "";
    loginPage();
  });
  replace(
    byId("who"),
    h("span", { id: "key-name" }, session.me.key_name),
    " ",
    h("span", { id: "key-scopes" }, ...session.me.scopes.map((s) => h("span", { class: "scope" }, s))),
    " ",
    out,
  );
}

async function route(): Promise<void> {
  if (!current) {
    const key = storedKey();
    if (!key) return loginPage();
    try {
      current = await signIn(key);
    } catch (problem) {
      signOut();
      return loginPage(describe(problem));
    }
  }
  const session = current;
  const [, path = "", id] = location.hash.match(/^#\/([a-z]+)(?:\/([0-9a-fA-F-]{36}))?$/) ?? [];
  const fallback = ROUTES.find((r) => session.can(r.scope) && r.path !== "user");
  const target = ROUTES.find((r) => r.path === path) ?? fallback;
  const page = byId("page");
  if (!target) {
    header(session, "");
    replace(page, h("p", { class: "error" }, `This key (${session.me.scopes.join(", ") || "no scopes"}) may use no page of the console.`));
    return;
  }
  header(session, target.path);
  if (!session.can(target.scope)) {
    replace(page, h("p", { class: "error" }, `403 Forbidden: this page needs the ${target.scope} scope, which this key lacks.`));
    return;
  }
  // Each navigation renders into a view of its own: a slower earlier page that finishes late
  // writes into its detached view, never over the page navigated to since.
  const view = h("div", { class: "view" });
  replace(page, view);
  replace(view, h("p", { class: "loading" }, "Loading…"));
  try {
    await target.render(session, view, id);
  } catch (problem) {
    replace(view, h("p", { class: "error", id: "page-error" }, describe(problem)));
  }
}

window.addEventListener("console-error", (event) => {
  const problem = (event as CustomEvent).detail;
  const notice = document.getElementById("action-result") ?? byId("page").insertBefore(h("p", { id: "action-result", class: "notice" }), byId("page").firstChild);
  notice.className = "notice error";
  replace(notice, describe(problem));
});
window.addEventListener("hashchange", () => void route());
void route();
