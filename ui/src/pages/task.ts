// Task: every field, its claim, last report, result or failure, dependencies, the HTTP attempt timeline;
// cancel / run now / replay where they apply.
// One request per refresh, two for an HTTP-target task: GET /tasques/{q}/{id} and GET /tasques/timeline/{q}/{id}.

import { call, get, path } from "../api.js";
import { act } from "../actions.js";
import { button, h, replaceChildren } from "../dom.js";
import { millis, time, value } from "../format.js";
import type { Page, PageContext } from "../page.js";
import { renderIfChanged } from "../render.js";
import { href } from "../router.js";
import { table } from "../table.js";
import type { Attempt, LastClaimed, Task, Timeline } from "../types.js";

// Shown in their own sections rather than in the field list.
const SECTIONED = new Set(["last_claimed", "dependencies", "metadata"]);
const TIMES = new Set(["run_at", "last_enqueued_at", "first_attempted_at", "created_at", "modified_at"]);
const FINISHED = new Set(["done", "dead", "cancelled"]);

function dd(name: string, v: unknown): HTMLElement {
  if (typeof v === "object" && v !== null) return h("dd", { "data-field": name }, h("pre", {}, value(v)));
  return h("dd", { "data-field": name }, TIMES.has(name) && typeof v === "string" ? time(v) : value(v));
}

function fieldList(t: Task): HTMLElement {
  const entries: [string, unknown][] = Object.entries(t).filter(([k]) => !SECTIONED.has(k));
  entries.push(["created_at", t.metadata.created_at], ["modified_at", t.metadata.modified_at]);
  if (t.metadata.version !== undefined) entries.push(["version", t.metadata.version]);
  return h("dl", { "aria-label": "Fields", class: "fields" }, entries.flatMap(([k, v]) => [h("dt", {}, k), dd(k, v)]));
}

function pairs(items: [string, unknown][]): HTMLElement {
  return h("dl", { class: "fields" }, items.flatMap(([k, v]) => [h("dt", {}, k), dd(k, v)]));
}

function claimBody(c: LastClaimed | null | undefined): HTMLElement {
  if (c === null || c === undefined) return h("p", {}, "never claimed");
  return pairs([
    ["worker_id", c.worker_id],
    ["claim_id", c.claim_id ?? null],
    ["claimed_at", time(c.claimed_at)],
    ["times_out_at", time(c.times_out_at)],
  ]);
}

function reportBody(c: LastClaimed | null | undefined): HTMLElement {
  const r = c?.last_report;
  if (r === null || r === undefined) return h("p", {}, "no report");
  return pairs([
    ["at", time(r.at)],
    ["data", r.data ?? null],
  ]);
}

function resultBody(c: LastClaimed | null | undefined, kind: "success" | "failure"): HTMLElement {
  const r = c?.result;
  const data = r?.[kind];
  if (r === null || r === undefined || data === null || data === undefined) return h("p", {}, kind === "success" ? "no result" : "no failure");
  return pairs([
    ["at", time(r.at)],
    [kind, data],
  ]);
}

function dependenciesBody(t: Task): HTMLElement {
  const deps = t.dependencies ?? [];
  if (deps.length === 0) return h("p", {}, "no dependencies");
  const rows = deps.map((d) =>
    h(
      "tr",
      { "data-task-id": d.id, "data-queue": d.queue },
      h("th", { scope: "row" }, d.state === "missing" ? `${d.queue}/${d.id}` : h("a", { href: href.task(d.queue, d.id) }, `${d.queue}/${d.id}`)),
      h("td", { "data-field": "state" }, d.state),
    ),
  );
  return h("div", {}, table("Dependency states", ["Task", "State"], rows), h("p", { class: "hint" }, `on failure: ${value(t["on_dependency_failure"] ?? "cancel")}`));
}

function attemptItem(a: Attempt): HTMLElement {
  const outcome = a.success ? "success" : "failure";
  const status = a.status_code !== null && a.status_code !== undefined ? `HTTP ${a.status_code}` : (a.error ?? "no answer");
  return h(
    "li",
    { class: `attempt ${outcome}`, "data-attempt": a.attempt, "data-run": a.run ?? 0 },
    h("span", { class: "attempt-title" }, `Run ${a.run ?? 0}, attempt ${a.attempt}`),
    " ",
    h("span", { "data-field": "status" }, status),
    " ",
    h("span", { "data-field": "outcome", class: `badge ${outcome}` }, outcome),
    " ",
    h("time", { datetime: a.started_at, "data-field": "started_at" }, time(a.started_at)),
    " ",
    h("span", { "data-field": "duration" }, millis(a.duration_ms)),
    " ",
    h("span", { class: "hint" }, `by ${a.worker_id}`),
    a.error !== null && a.error !== undefined && a.status_code !== null && a.status_code !== undefined ? h("span", {}, ` ${a.error}`) : null,
  );
}

function timelineBody(t: Task, timeline: Timeline | null): HTMLElement {
  if (t.http_request === null || t.http_request === undefined) return h("p", {}, "not an HTTP-target task");
  if (timeline === null || timeline.attempts.length === 0) return h("p", {}, "no attempts yet");
  return h("ol", { class: "timeline" }, timeline.attempts.map(attemptItem));
}

export function taskPage(ctx: PageContext, queue: string, id: string): Page {
  const taskPath = path("tasques", queue, id);
  const buttons = h("div", { class: "buttons" });
  const fields = h("div", {});
  const sections = {
    claim: h("div", {}),
    reports: h("div", {}),
    result: h("div", {}),
    failure: h("div", {}),
    dependencies: h("div", {}),
    timeline: h("div", {}),
  };
  const section = (label: string, body: HTMLElement): HTMLElement => h("section", { "aria-label": label }, h("h2", {}, label), body);

  const cancel = button("Cancel", () =>
    act(ctx, async () => {
      await call("PUT", path("tasques", "cancel", queue, id));
    }, cancel),
  );
  const runNow = button("Run now", () =>
    act(ctx, async () => {
      await call("PUT", path("tasques", "run-now", queue, id));
    }, runNow),
  );
  const replay = button("Replay", () =>
    act(ctx, async () => {
      await call("POST", "/tasques/replay", { body: { ids: [{ queue, id }] } });
    }, replay),
  );

  return {
    title: `Task ${queue}/${id}`,
    mount(main) {
      main.append(
        h("h1", {}, `Task ${queue}/${id}`),
        h("p", {}, h("a", { href: href.queue(queue) }, `Queue ${queue}`)),
        buttons,
        h("div", { class: "task-grid" },
          h("section", {}, h("h2", {}, "Fields"), fields),
          h("div", {},
            section("Claim", sections.claim),
            section("Reports", sections.reports),
            section("Result", sections.result),
            section("Failure", sections.failure),
            section("Dependencies", sections.dependencies),
            section("Timeline", sections.timeline),
          ),
        ),
      );
    },
    async refresh(signal) {
      const t = await get<Task>(taskPath, undefined, signal);
      const timeline =
        t.http_request === null || t.http_request === undefined
          ? null
          : await get<Timeline>(path("tasques", "timeline", queue, id), undefined, signal);
      renderIfChanged(buttons, t.state, () =>
        replaceChildren(
          buttons,
          FINISHED.has(t.state) ? null : cancel,
          t.state === "queued" || t.state === "failed" ? runNow : null,
          t.state === "dead" ? replay : null,
        ),
      );
      renderIfChanged(fields, t, () => replaceChildren(fields, fieldList(t)));
      const c = t.last_claimed;
      renderIfChanged(sections.claim, c ?? null, () => {
        replaceChildren(sections.claim, claimBody(c));
        replaceChildren(sections.reports, reportBody(c));
        replaceChildren(sections.result, resultBody(c, "success"));
        replaceChildren(sections.failure, resultBody(c, "failure"));
      });
      renderIfChanged(sections.dependencies, [t.dependencies ?? null, t["on_dependency_failure"] ?? null], () =>
        replaceChildren(sections.dependencies, dependenciesBody(t)),
      );
      renderIfChanged(sections.timeline, timeline, () => replaceChildren(sections.timeline, timelineBody(t, timeline)));
    },
  };
}
