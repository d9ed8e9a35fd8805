// A button's action: clear the old message, run, show the API's error, refresh the page either way.

import { showError, clearError } from "./errors.js";
import type { PageContext } from "./page.js";

export function act(ctx: PageContext, work: () => Promise<void>, trigger?: HTMLButtonElement): void {
  clearError();
  if (trigger !== undefined) trigger.disabled = true;
  work()
    .catch((e: unknown) => showError(e, "action"))
    .finally(() => {
      if (trigger !== undefined) trigger.disabled = false;
      ctx.refreshNow();
    });
}
