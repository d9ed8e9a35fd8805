// A button's action: clear the old message, run, show the API's error, refresh the page either way.
import { showError, clearError } from "./errors.js";
export function act(ctx, work, trigger) {
    clearError();
    if (trigger !== undefined)
        trigger.disabled = true;
    work()
        .catch((e) => showError(e, "action"))
        .finally(() => {
        if (trigger !== undefined)
            trigger.disabled = false;
        ctx.refreshNow();
    });
}
