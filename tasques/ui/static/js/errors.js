// The global message area (#error): the API's message and the fields its details name.
import { ApiError } from "./api.js";
let shownFrom = null;
function area() {
    const el = document.getElementById("error");
    if (el === null)
        throw new Error("index.html lacks #error");
    return el;
}
export function describe(e) {
    if (e instanceof ApiError) {
        const fields = e.details.map((d) => `${d.field}: ${d.problem}`);
        const prefix = e.status > 0 ? `${e.status}: ` : "";
        return fields.length === 0 ? `${prefix}${e.message}` : `${prefix}${e.message} (${fields.join("; ")})`;
    }
    return e instanceof Error ? e.message : String(e);
}
export function showError(e, source = "action") {
    const el = area();
    el.textContent = describe(e);
    el.hidden = false;
    shownFrom = source;
}
/** A refresh that worked clears only what a refresh showed: an action's error stays until the next action. */
export function clearError(source = "action") {
    if (source === "refresh" && shownFrom !== "refresh")
        return;
    const el = area();
    el.textContent = "";
    el.hidden = true;
    shownFrom = null;
}
