// Tables sit in a wrapper that scrolls sideways, so a phone never scrolls the whole page.

import { h } from "./dom.js";

export function table(label: string, headers: string[], rows: HTMLTableRowElement[], empty = "none"): HTMLElement {
  const body = h("tbody", {}, rows);
  if (rows.length === 0) body.append(h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, empty)));
  return h(
    "div",
    { class: "table-scroll", tabindex: 0, role: "region", "aria-label": `${label} (scrolls sideways)` },
    h("table", { "aria-label": label }, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))), body),
  );
}
