// Recurring tasks: the list with each one's next five fire times; create, edit (the API's validation messages
// next to the fields) and delete. The schedule is previewed while it is typed.
// Per refresh: GET /recurring_tasques, plus GET /schedules/preview for each expression whose cached next fire
// time has passed.
import { ApiError, call, get, path } from "../api.js";
import { act } from "../actions.js";
import { confirmDialog } from "../dialog.js";
import { button, field, h, replaceChildren } from "../dom.js";
import { describe, showError, clearError } from "../errors.js";
import { time } from "../format.js";
import { nextFireTimes } from "../preview.js";
import { renderIfChanged } from "../render.js";
import { href } from "../router.js";
import { table } from "../table.js";
const PREVIEW_DELAY_MS = 300;
function errorSlot(fieldPath) {
    return h("p", { class: "field-error", "data-error-for": fieldPath, id: `err-${fieldPath.replace(/\W/g, "-")}` });
}
export function recurringPage(ctx) {
    const region = h("div", { class: "region" });
    // The definition being edited: fields the form does not show (priority, retries, …) are sent back unchanged.
    let editing = null;
    const idInput = h("input", { id: "rt-id", name: "id", type: "text", autocomplete: "off", required: true });
    const scheduleInput = h("input", { id: "rt-schedule", name: "schedule_expression", type: "text", autocomplete: "off", required: true, placeholder: "*/5 * * * *, @hourly, @every 30s" });
    const queueInput = h("input", { id: "rt-queue", name: "queue", type: "text", autocomplete: "off", required: true });
    const kindInput = h("input", { id: "rt-kind", name: "kind", type: "text", autocomplete: "off", required: true });
    const argsInput = h("textarea", { id: "rt-args", name: "args", rows: 3, spellcheck: "false" });
    const skipInput = h("input", { id: "rt-skip", name: "skip_if_outstanding_tasks_exist", type: "checkbox" });
    const preview = h("ol", { "aria-label": "Next fire times", class: "preview" });
    const previewNote = h("p", { class: "hint", "aria-live": "polite" });
    const formTitle = h("h2", {}, "New recurring task");
    const slots = new Map();
    const slot = (p) => {
        const s = errorSlot(p);
        slots.set(p, s);
        return s;
    };
    const generalSlot = slot("");
    const withError = (label, input, p) => {
        const s = slot(p);
        input.setAttribute("aria-describedby", s.id);
        const f = field(label, input);
        f.append(s);
        return f;
    };
    const skipField = h("div", { class: "field checkbox" }, skipInput, h("label", { for: "rt-skip" }, "Skip if outstanding"), slot("skip_if_outstanding_tasks_exist"));
    const newButton = button("New", () => fill(null));
    const form = h("form", { "aria-label": "Recurring task", class: "recurring-form", novalidate: true }, formTitle, withError("Id", idInput, "id"), withError("Schedule", scheduleInput, "schedule_expression"), preview, previewNote, withError("Queue", queueInput, "task_definition.queue"), withError("Kind", kindInput, "task_definition.kind"), withError("Args (JSON)", argsInput, "task_definition.args"), skipField, generalSlot, h("div", { class: "buttons" }, h("button", { type: "submit" }, "Save"), newButton));
    function clearFieldErrors() {
        for (const s of slots.values())
            s.textContent = "";
        for (const input of [idInput, scheduleInput, queueInput, kindInput, argsInput])
            input.removeAttribute("aria-invalid");
    }
    /** Each detail next to the field it names (the longest slot path that is a prefix of it), else under the form. */
    function showFieldErrors(e) {
        for (const d of e.details) {
            const name = d.field.replace(/^body\./, "").replace(/^expression$/, "schedule_expression");
            let best = "";
            for (const p of slots.keys()) {
                if (p !== "" && (name === p || name.startsWith(`${p}.`)) && p.length > best.length)
                    best = p;
            }
            const target = slots.get(best) ?? generalSlot;
            target.textContent = `${target.textContent ?? ""}${target.textContent ? " " : ""}${d.problem}`;
            document.querySelector(`[aria-describedby="${target.id}"]`)?.setAttribute("aria-invalid", "true");
        }
    }
    function fill(r) {
        editing = r;
        clearFieldErrors();
        formTitle.textContent = r === null ? "New recurring task" : `Edit ${r.id}`;
        idInput.value = r?.id ?? "";
        idInput.readOnly = r !== null;
        scheduleInput.value = r?.schedule_expression ?? "";
        queueInput.value = r?.task_definition.queue ?? "";
        kindInput.value = r?.task_definition.kind ?? "";
        const args = r?.task_definition.args;
        argsInput.value = args === undefined || args === null ? "" : JSON.stringify(args, null, 2);
        skipInput.checked = r?.skip_if_outstanding_tasks_exist ?? false;
        void showPreview();
        (r === null ? idInput : scheduleInput).focus();
    }
    let previewTimer;
    let previewController = null;
    async function showPreview() {
        previewController?.abort();
        const expression = scheduleInput.value.trim();
        preview.replaceChildren();
        previewNote.textContent = "";
        if (expression === "")
            return;
        const controller = new AbortController();
        previewController = controller;
        try {
            const next = await nextFireTimes(expression, controller.signal);
            replaceChildren(preview, next.map((t) => h("li", {}, h("time", { datetime: t }, time(t)))));
        }
        catch (e) {
            if (controller.signal.aborted)
                return;
            previewNote.textContent = e instanceof ApiError && e.details.length > 0 ? e.details.map((d) => d.problem).join("; ") : describe(e);
        }
    }
    scheduleInput.addEventListener("input", () => {
        clearTimeout(previewTimer);
        previewTimer = setTimeout(() => void showPreview(), PREVIEW_DELAY_MS);
    });
    form.addEventListener("submit", (event) => {
        event.preventDefault();
        clearFieldErrors();
        clearError();
        let args = undefined;
        if (argsInput.value.trim() !== "") {
            try {
                args = JSON.parse(argsInput.value);
            }
            catch (e) {
                const err = new ApiError(0, "Args (JSON) is not valid JSON", [{ field: "task_definition.args", problem: e instanceof Error ? e.message : "invalid JSON" }]);
                showFieldErrors(err);
                showError(err);
                return;
            }
        }
        const definition = { ...(editing?.task_definition ?? {}), queue: queueInput.value.trim(), kind: kindInput.value.trim() };
        if (args === undefined)
            delete definition.args;
        else
            definition.args = args;
        const body = {
            schedule_expression: scheduleInput.value.trim(),
            task_definition: definition,
            skip_if_outstanding_tasks_exist: skipInput.checked,
        };
        const save = editing === null
            ? call("POST", "/recurring_tasques", { body: { id: idInput.value.trim(), ...body } })
            : call("PUT", path("recurring_tasques", editing.id), { body });
        save
            .then((saved) => {
            previewNote.textContent = `Saved ${saved.id}.`;
            fill(null);
            previewNote.textContent = `Saved ${saved.id}.`;
        })
            .catch((e) => {
            if (e instanceof ApiError)
                showFieldErrors(e);
            showError(e);
        })
            .finally(() => ctx.refreshNow());
    });
    function row(r, next) {
        const edit = button("Edit", () => fill(r));
        const del = button("Delete", () => {
            void confirmDialog({ title: `Delete recurring task ${r.id}?`, text: "It stops enqueueing; tasks it already enqueued stay.", confirmLabel: "Delete" }).then((yes) => {
                if (!yes)
                    return;
                act(ctx, async () => {
                    await call("DELETE", path("recurring_tasques", r.id));
                    if (editing?.id === r.id)
                        fill(null);
                });
            });
        }, { class: "danger" });
        return h("tr", { "data-recurring-id": r.id }, h("th", { scope: "row" }, r.id), h("td", { "data-field": "schedule" }, h("code", {}, r.schedule_expression)), h("td", { "data-field": "queue" }, h("a", { href: href.queue(r.task_definition.queue) }, r.task_definition.queue)), h("td", { "data-field": "kind" }, r.task_definition.kind), h("td", { "data-field": "next" }, typeof next === "string" ? next : h("ol", { class: "times" }, next.map((t) => h("li", {}, h("time", { datetime: t }, time(t)))))), h("td", { "data-field": "last_slot" }, time(r.last_slot_at)), h("td", { "data-field": "last_error" }, r.last_error ?? ""), h("td", {}, h("div", { class: "buttons" }, edit, del)));
    }
    return {
        title: "Recurring tasks",
        mount(main) {
            main.append(h("h1", {}, "Recurring tasks"), region, form);
        },
        async refresh(signal) {
            const list = await get("/recurring_tasques", undefined, signal);
            const nexts = await Promise.all(list.map((r) => nextFireTimes(r.schedule_expression, signal).catch((e) => {
                if (signal.aborted)
                    throw e;
                return describe(e);
            })));
            renderIfChanged(region, [list, nexts], () => replaceChildren(region, table("Recurring tasks", ["Id", "Schedule", "Queue", "Kind", "Next five fire times", "Last slot", "Last error", "Actions"], list.map((r, i) => row(r, nexts[i] ?? [])), "no recurring tasks")));
        },
    };
}
