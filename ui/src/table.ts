// Tables sit in a wrapper that scrolls sideways, so a phone never scrolls the whole page. The wrapper has no
// name of its own: the table's aria-label is the one a screen reader (and a test's locator) finds.

import { h } from "./dom.js";

export function table(label: string, headers: string[], rows: HTMLTableRowElement[], empty = "none"): HTMLElement {
  const body = h("tbody", {}, rows);
  if (rows.length === 0) body.append(h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, empty)));
  return h(
    "div",
    { class: "table-scroll" },
    h("table", { "aria-label": label }, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))), body),
  );
}
