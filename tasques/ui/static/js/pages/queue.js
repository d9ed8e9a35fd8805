// Queue: counts, settings, pause/resume/run now/delete, and its tasks with filters and cursor paging.
// Two requests per refresh: GET /queues/{q} and GET /tasques?queue=q&… (the page being shown).
import { call, get, path } from "../api.js";
import { act } from "../actions.js";
import { confirmDialog } from "../dialog.js";
import { button, field, h, replaceChildren } from "../dom.js";
import { seconds, time, value } from "../format.js";
import { renderIfChanged } from "../render.js";
import { href } from "../router.js";
import { table } from "../table.js";
import { TASK_STATES } from "../types.js";
export const PAGE_SIZE = 50;
function taskRow(t) {
    return h("tr", { "data-task-id": t.id }, h("th", { scope: "row" }, h("a", { href: href.task(t.queue, t.id) }, t.id)), h("td", { "data-field": "state" }, t.state), h("td", { "data-field": "kind" }, t.kind), h("td", { "data-field": "priority", class: "num" }, String(t.priority)), h("td", { "data-field": "run_at" }, time(t.run_at)), h("td", { "data-field": "attempted", class: "num" }, String(t.attempted)), h("td", { "data-field": "recurring_task_id" }, t.recurring_task_id ?? ""));
}
function settingsList(d) {
    const s = d.settings;
    const item = (label, v, name) => [
        h("dt", {}, label),
        h("dd", { "data-field": name }, typeof v === "object" && v !== null ? h("pre", {}, value(v)) : value(v)),
    ];
    return h("dl", { class: "fields" }, item("Paused", d.paused ? "yes" : "no", "paused"), item("Max dispatches per second", s.max_dispatches_per_second ?? "server default", "max_dispatches_per_second"), item("Max concurrent dispatches", s.max_concurrent_dispatches ?? "server default", "max_concurrent_dispatches"), item("Retry policy", s.retry_policy ?? "server default", "retry_policy"), item("Created", time(s.metadata.created_at), "created_at"), item("Modified", time(s.metadata.modified_at), "modified_at"));
}
export function queuePage(ctx, queue) {
    const filters = { state: "", kind: "", recurring: "" };
    // The cursors of the pages before this one: "First page" empties it, "Next page" pushes.
    let cursors = [];
    let nextCursor = null;
    let paused = null;
    const summary = h("div", { class: "facts" });
    const settings = h("section", { "aria-label": "Settings" }, h("h2", {}, "Settings"));
    const settingsBody = h("div", {});
    settings.append(settingsBody);
    const tasks = h("div", { class: "region" });
    const note = h("p", { class: "note", "aria-live": "polite" });
    const pause = button("Pause", () => act(ctx, async () => {
        await call("PUT", `${path("queues", queue)}/pause`);
    }, pause));
    const resume = button("Resume", () => act(ctx, async () => {
        await call("PUT", `${path("queues", queue)}/resume`);
    }, resume));
    const runNow = button("Run now", () => act(ctx, async () => {
        const r = await call("PUT", `${path("queues", queue)}/run-now`);
        note.textContent = `${r.run_now} task${r.run_now === 1 ? "" : "s"} due later made claimable now.`;
    }, runNow));
    const remove = button("Delete queue", () => {
        void confirmDialog({
            title: `Delete queue ${queue}?`,
            text: "Its live tasks and settings are removed (finished history stays). Type the queue name to confirm.",
            confirmLabel: "Delete",
            typed: { label: "Queue name", expected: queue },
        }).then((yes) => {
            if (!yes)
                return;
            act(ctx, async () => {
                await call("DELETE", path("queues", queue), { query: { confirm: queue } });
                ctx.navigate(href.overview());
            });
        });
    }, { class: "danger" });
    const stateSelect = h("select", { id: "filter-state", name: "state" }, h("option", { value: "" }, "any"), TASK_STATES.map((s) => h("option", { value: s }, s)));
    const kindInput = h("input", { id: "filter-kind", name: "kind", type: "text", autocomplete: "off" });
    const recurringInput = h("input", { id: "filter-recurring", name: "recurring_task_id", type: "text", autocomplete: "off" });
    const filterForm = h("form", { "aria-label": "Filters", class: "filters" }, field("State", stateSelect), field("Kind", kindInput), field("Recurring task", recurringInput), h("button", { type: "submit" }, "Apply"));
    filterForm.addEventListener("submit", (event) => {
        event.preventDefault();
        filters.state = stateSelect.value;
        filters.kind = kindInput.value.trim();
        filters.recurring = recurringInput.value.trim();
        cursors = [];
        ctx.refreshNow();
    });
    const firstPage = button("First page", () => {
        cursors = [];
        ctx.refreshNow();
    });
    const nextPage = button("Next page", () => {
        if (nextCursor === null)
            return;
        cursors = [...cursors, nextCursor];
        ctx.refreshNow();
    });
    const paging = h("div", { class: "buttons" });
    return {
        title: `Queue ${queue}`,
        mount(main) {
            main.append(h("h1", {}, `Queue ${queue}`), h("div", { class: "buttons" }, pause, resume, runNow, remove), note, summary, settings, h("section", {}, h("h2", {}, "Tasks"), filterForm, tasks, paging));
        },
        async refresh(signal) {
            const cursor = cursors[cursors.length - 1];
            const [detail, list] = await Promise.all([
                get(path("queues", queue), undefined, signal),
                get("/tasques", {
                    queue,
                    state: filters.state,
                    kind: filters.kind,
                    recurring_task_id: filters.recurring,
                    limit: PAGE_SIZE,
                    cursor,
                }, signal),
            ]);
            paused = detail.paused;
            pause.disabled = paused;
            resume.disabled = !paused;
            const counts = TASK_STATES.map((s) => `${s} ${detail.counts[s] ?? 0}`).join(" · ");
            replaceChildren(summary, h("div", { class: "fact" }, h("span", { class: "fact-label" }, "Counts"), h("p", { id: "counts" }, counts)), h("div", { class: "fact" }, h("span", { class: "fact-label" }, "State"), h("p", { id: "paused" }, paused ? "paused" : "running")), h("div", { class: "fact" }, h("span", { class: "fact-label" }, "Oldest due"), h("p", {}, seconds(detail.oldest_queued_age_seconds))), h("div", { class: "fact" }, h("span", { class: "fact-label" }, "Finished last minute"), h("p", {}, String(detail.finished_last_minute))));
            renderIfChanged(settingsBody, detail.settings, () => replaceChildren(settingsBody, settingsList(detail)));
            renderIfChanged(tasks, list.tasks, () => replaceChildren(tasks, table("Tasks", ["Id", "State", "Kind", "Priority", "Run at", "Attempted", "Recurring task"], list.tasks.map(taskRow), "no tasks match")));
            nextCursor = list.next_cursor ?? null;
            const pageNumber = cursors.length + 1;
            // Rebuilt only when the buttons change: a focused "Next page" keeps its focus across refreshes.
            renderIfChanged(paging, [pageNumber, nextCursor !== null], () => replaceChildren(paging, h("span", { class: "hint" }, `Page ${pageNumber}`), cursors.length > 0 ? firstPage : null, nextCursor !== null ? nextPage : null));
        },
    };
}
