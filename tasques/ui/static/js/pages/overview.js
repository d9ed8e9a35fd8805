// Overview: every queue with its counts, throughput, oldest due age and paused flag; the store and the leader.
// One request per refresh: GET /overview.
import { get } from "../api.js";
import { h, replaceChildren } from "../dom.js";
import { seconds, time } from "../format.js";
import { renderIfChanged } from "../render.js";
import { href } from "../router.js";
import { sparkline } from "../sparkline.js";
import { table } from "../table.js";
import { TASK_STATES } from "../types.js";
function row(q) {
    return h("tr", { "data-queue": q.queue }, h("th", { scope: "row" }, h("a", { href: href.queue(q.queue) }, q.queue)), TASK_STATES.map((s) => h("td", { "data-state": s, class: "num" }, String(q.counts[s] ?? 0))), h("td", { "data-field": "paused" }, q.paused ? "paused" : ""), h("td", { "data-field": "oldest", class: "num" }, seconds(q.oldest_queued_age_seconds)), h("td", { "data-field": "throughput", class: "throughput" }, h("span", {}, q.finished_per_minute.join(" ")), " ", sparkline(q.finished_per_minute)));
}
export function overviewPage(_ctx) {
    const store = h("p", { id: "store" }, "…");
    const leader = h("p", { id: "leader" }, "…");
    const server = h("p", { id: "server" }, "…");
    const queues = h("div", { class: "region" });
    const minutes = h("p", { class: "hint" });
    return {
        title: "Overview",
        mount(main) {
            main.append(h("h1", {}, "Overview"), h("div", { class: "facts" }, h("div", { class: "fact" }, h("span", { class: "fact-label" }, "Store"), store), h("div", { class: "fact" }, h("span", { class: "fact-label" }, "Leader"), leader), h("div", { class: "fact" }, h("span", { class: "fact-label" }, "Answered by"), server)), h("h2", {}, "Queues"), minutes, queues);
        },
        async refresh(signal) {
            const o = await get("/overview", undefined, signal);
            store.textContent = o.store;
            leader.textContent = o.leader === null ? "no leader" : o.leader.holder;
            leader.title = o.leader === null ? "" : `lease expires ${time(o.leader.expires_at)}`;
            server.textContent = `${o.server.id}${o.server.leader ? " (leader)" : ""}`;
            const first = o.minutes[0];
            minutes.textContent =
                first === undefined ? "" : `Throughput: tasks finished per minute since ${time(first)}, oldest first.`;
            renderIfChanged(queues, o.queues, () => replaceChildren(queues, table("Queues", ["Queue", ...TASK_STATES, "Paused", "Oldest due", "Finished / min"], o.queues.map(row), "no queues yet")));
        },
    };
}
