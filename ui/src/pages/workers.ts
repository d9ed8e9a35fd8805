// Workers: each with its state, queues, last sighting and claims; drain and resume.
// One request per refresh: GET /workers.

import { call, get, path } from "../api.js";
import { act } from "../actions.js";
import { button, h, replaceChildren } from "../dom.js";
import { time } from "../format.js";
import type { Page, PageContext } from "../page.js";
import { renderIfChanged } from "../render.js";
import { table } from "../table.js";
import type { WorkerInfo, WorkerList } from "../types.js";

export function workersPage(ctx: PageContext): Page {
  const region = h("div", { class: "region" });

  function row(w: WorkerInfo): HTMLTableRowElement {
    const verb = w.draining ? "resume" : "drain";
    const action = button(w.draining ? "Resume" : "Drain", () =>
      act(ctx, async () => {
        await call("PUT", `${path("workers", w.id)}/${verb}`);
      }, action),
    );
    return h(
      "tr",
      { "data-worker-id": w.id },
      h("th", { scope: "row" }, w.id),
      h("td", { "data-field": "state" }, w.state),
      h("td", { "data-field": "queues" }, w.queues.join(", ")),
      h("td", { "data-field": "last_seen" }, time(w.last_seen_at)),
      h("td", { "data-field": "claims", class: "num" }, String(w.claims_held)),
      h("td", { "data-field": "version" }, w.version ?? "—"),
      h("td", { "data-field": "host" }, w.host ?? "—"),
      h("td", {}, action),
    );
  }

  return {
    title: "Workers",
    mount(main) {
      main.append(
        h("h1", {}, "Workers"),
        h("p", { class: "hint" }, "A drained worker's claims return nothing until it is resumed."),
        region,
      );
    },
    async refresh(signal) {
      const list = await get<WorkerList>("/workers", undefined, signal);
      renderIfChanged(region, list.workers, () =>
        replaceChildren(
          region,
          table("Workers", ["Id", "State", "Queues", "Last seen", "Claims", "Version", "Host", "Action"], list.workers.map(row), "no workers seen"),
        ),
      );
    },
  };
}
