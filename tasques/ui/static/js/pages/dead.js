// Dead letters: dead tasks filtered by queue, kind and death time; replay the selected ones or all matching.
// One request per refresh: GET /tasques?state=dead&queue=&kind= (the death-time bounds are applied here, by each
// task's last modification, which its death was; "Replay all matching" sends them to the server's filter).
import { ApiError, call, get } from "../api.js";
import { act } from "../actions.js";
import { button, field, h, replaceChildren } from "../dom.js";
import { time, value } from "../format.js";
import { renderIfChanged } from "../render.js";
import { href } from "../router.js";
import { table } from "../table.js";
export const DEAD_PAGE_SIZE = 200;
// "Replay all matching" asks again while the server says more match, at most this many rounds of 1,000.
const MAX_ROUNDS = 20;
const keyOf = (t) => JSON.stringify([t.queue, t.id]);
function parseTime(raw, name) {
    if (raw === "")
        return null;
    if (Number.isNaN(Date.parse(raw))) {
        throw new ApiError(0, `${name} is not a date and time`, [{ field: name, problem: "expected ISO 8601, e.g. 2026-12-03T10:00:00Z" }]);
    }
    return raw;
}
export function deadPage(ctx) {
    const filters = { queue: "", kind: "", since: null, until: null };
    const selected = new Set();
    let shown = [];
    const region = h("div", { class: "region" });
    const status = h("p", { role: "status" });
    const listed = h("p", { class: "hint" });
    const queueInput = h("input", { id: "dead-queue", name: "queue", type: "text", autocomplete: "off" });
    const kindInput = h("input", { id: "dead-kind", name: "kind", type: "text", autocomplete: "off" });
    const sinceInput = h("input", { id: "dead-since", name: "dead_since", type: "text", autocomplete: "off", placeholder: "2026-12-03T10:00:00Z" });
    const untilInput = h("input", { id: "dead-until", name: "dead_until", type: "text", autocomplete: "off", placeholder: "2026-12-03T11:00:00Z" });
    const form = h("form", { "aria-label": "Filters", class: "filters" }, field("Queue", queueInput), field("Kind", kindInput), field("Dead since", sinceInput), field("Dead until", untilInput), h("button", { type: "submit" }, "Apply"));
    form.addEventListener("submit", (event) => {
        event.preventDefault();
        act(ctx, async () => {
            filters.since = parseTime(sinceInput.value.trim(), "dead_since");
            filters.until = parseTime(untilInput.value.trim(), "dead_until");
            filters.queue = queueInput.value.trim();
            filters.kind = kindInput.value.trim();
            selected.clear();
            status.textContent = "";
        });
    });
    function report(r) {
        const extra = [r.notDead > 0 ? `${r.notDead} no longer dead` : "", r.notFound > 0 ? `${r.notFound} not found` : "", r.more ? "more match: replay again" : ""].filter((s) => s !== "");
        status.textContent = `Replayed ${r.replayed} task${r.replayed === 1 ? "" : "s"}${extra.length > 0 ? ` (${extra.join(", ")})` : ""}.`;
    }
    function tally(results) {
        return {
            replayed: results.filter((x) => x.status === "replayed").length,
            notDead: results.filter((x) => x.status === "not_dead").length,
            notFound: results.filter((x) => x.status === "not_found").length,
        };
    }
    const replaySelected = button("Replay selected", () => act(ctx, async () => {
        const ids = shown.filter((t) => selected.has(keyOf(t))).map((t) => ({ queue: t.queue, id: t.id }));
        if (ids.length === 0) {
            status.textContent = "Nothing selected.";
            return;
        }
        const r = await call("POST", "/tasques/replay", { body: { ids } });
        selected.clear();
        report({ ...tally(r.results), more: false });
    }, replaySelected));
    const replayAll = button("Replay all matching", () => act(ctx, async () => {
        const none = filters.queue === "" && filters.kind === "" && filters.since === null && filters.until === null;
        const body = {
            queue: filters.queue === "" ? null : filters.queue,
            kind: filters.kind === "" ? null : filters.kind,
            dead_since: filters.since,
            // The API wants at least one criterion: with none, "all matching" is every task dead until now.
            dead_until: none ? new Date().toISOString() : filters.until,
            limit: 1000,
        };
        const total = { replayed: 0, notDead: 0, notFound: 0, more: false };
        for (let round = 0; round < MAX_ROUNDS; round++) {
            const r = await call("POST", "/tasques/replay", { body });
            const t = tally(r.results);
            total.replayed += t.replayed;
            total.notDead += t.notDead;
            total.notFound += t.notFound;
            total.more = r.more;
            if (!r.more)
                break;
        }
        selected.clear();
        report(total);
    }, replayAll));
    function row(t) {
        const key = keyOf(t);
        const box = h("input", { type: "checkbox", "aria-label": `Select ${t.queue}/${t.id}` });
        box.checked = selected.has(key);
        box.addEventListener("change", () => {
            if (box.checked)
                selected.add(key);
            else
                selected.delete(key);
        });
        const failure = t.last_claimed?.result?.failure;
        return h("tr", { "data-task-id": t.id, "data-queue": t.queue }, h("td", {}, box), h("td", { "data-field": "queue" }, h("a", { href: href.queue(t.queue) }, t.queue)), h("th", { scope: "row" }, h("a", { href: href.task(t.queue, t.id) }, t.id)), h("td", { "data-field": "kind" }, t.kind), h("td", { "data-field": "dead_at" }, time(t.metadata.modified_at)), h("td", { "data-field": "attempted", class: "num" }, String(t.attempted)), h("td", { "data-field": "failure", class: "clip" }, failure === null || failure === undefined ? "" : value(failure)));
    }
    return {
        title: "Dead letters",
        mount(main) {
            main.append(h("h1", {}, "Dead letters"), form, h("div", { class: "buttons" }, replaySelected, replayAll), status, listed, region);
        },
        async refresh(signal) {
            const list = await get("/tasques", { state: "dead", queue: filters.queue, kind: filters.kind, limit: DEAD_PAGE_SIZE }, signal);
            const since = filters.since === null ? null : Date.parse(filters.since);
            const until = filters.until === null ? null : Date.parse(filters.until);
            shown = list.tasks.filter((t) => {
                const at = Date.parse(t.metadata.modified_at);
                return (since === null || at >= since) && (until === null || at < until);
            });
            listed.textContent = `${shown.length} dead task${shown.length === 1 ? "" : "s"} shown${list.next_cursor ? ` (the newest ${DEAD_PAGE_SIZE} looked at; "Replay all matching" reaches the rest)` : ""}.`;
            renderIfChanged(region, shown, () => replaceChildren(region, table("Dead tasks", ["Select", "Queue", "Id", "Kind", "Dead at", "Attempted", "Failure"], shown.map(row), "no dead tasks match")));
        },
    };
}
