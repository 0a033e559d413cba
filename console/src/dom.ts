// A few DOM helpers. Text always goes in as text (textContent), never as HTML, so nothing the
// API returns can become markup or script.

type Child = Node | string | number | null | undefined | false;
type Attributes = Record<string, string | boolean | undefined | ((event: Event) => unknown)>;

export function h(tag: string, attributes: Attributes = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      // An action that fails is reported (main.ts shows it), never left as an unhandled rejection.
      element.addEventListener(name.replace(/^on/, ""), (event) => {
        Promise.resolve(value(event)).catch((error: unknown) => window.dispatchEvent(new CustomEvent("console-error", { detail: error })));
      });
    } else {
      element.setAttribute(name, value === true ? "" : value);
    }
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/// Empties `parent` and fills it with `children`.
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

export function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} missing from index.html`);
  return element as T;
}

/// A table with a header row; each row is a list of cells.
export function table(headers: string[], rows: Child[][], attributes: Attributes = {}): HTMLElement {
  return h(
    "table",
    attributes,
    h("thead", {}, h("tr", {}, ...headers.map((name) => h("th", {}, name)))),
    h("tbody", {}, ...rows.map((cells) => h("tr", {}, ...cells.map((cell) => h("td", {}, cell))))),
  );
}

/// `2026-12-04T18:20:00Z` as a short local time; empty for null.
export function when(value: string | null | undefined): string {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
}

export function badge(text: string, kind = text): HTMLElement {
  return h("span", { class: `badge badge-${kind.replace(/[^a-z0-9_-]/gi, "")}` }, text);
}
