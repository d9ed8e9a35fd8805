// The app: picks the page for the hash, runs its refresh while the tab is visible, and handles 401 with a login.

import { ApiError } from "./api.js";
import { clearError, showError } from "./errors.js";
import type { Page, PageContext } from "./page.js";
import { showLogin } from "./pages/login.js";
import { deadPage } from "./pages/dead.js";
import { overviewPage } from "./pages/overview.js";
import { queuePage } from "./pages/queue.js";
import { recurringPage } from "./pages/recurring.js";
import { taskPage } from "./pages/task.js";
import { workersPage } from "./pages/workers.js";
import { notFoundPage } from "./pages/notfound.js";
import { Refresher } from "./refresh.js";
import { parse, type Route } from "./router.js";
import { forgetToken, storedToken } from "./token.js";

let refreshes = 0;
let current: Refresher | null = null;

function mainElement(): HTMLElement {
  const main = document.getElementById("main");
  if (main === null) throw new Error("index.html lacks #main");
  return main;
}

function pageFor(route: Route, ctx: PageContext): Page {
  switch (route.page) {
    case "overview":
      return overviewPage(ctx);
    case "queue":
      return queuePage(ctx, route.queue);
    case "task":
      return taskPage(ctx, route.queue, route.id);
    case "recurring":
      return recurringPage(ctx);
    case "workers":
      return workersPage(ctx);
    case "dead":
      return deadPage(ctx);
    case "unknown":
      return notFoundPage(route.hash);
  }
}

function markCurrentLink(): void {
  const hash = location.hash === "" ? "#/" : location.hash;
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav[aria-label=Main] a")) {
    const target = link.getAttribute("href") ?? "";
    const here = target === "#/" ? hash === "#/" || hash.startsWith("#/queues/") || hash.startsWith("#/tasks/") : hash.startsWith(target);
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function updateLogout(): void {
  const logout = document.getElementById("logout");
  if (logout !== null) logout.hidden = storedToken() === null;
}

function loginNeeded(e: ApiError): void {
  current?.stop();
  current = null;
  // A token was sent and refused: say why (the API's message), and drop it.
  if (storedToken() !== null) {
    showError(e, "action");
    forgetToken();
  } else {
    clearError();
  }
  updateLogout();
  showLogin(mainElement(), () => {
    clearError();
    updateLogout();
    start();
  });
}

/** `moveFocus`: after a navigation, focus goes to the new page's heading (where a screen reader starts). */
function start(moveFocus = false): void {
  current?.stop();
  const main = mainElement();
  const ctx: PageContext = {
    refreshNow: () => refresher.now(),
    navigate: (hash) => {
      location.hash = hash;
    },
  };
  const page = pageFor(parse(location.hash), ctx);
  main.replaceChildren();
  page.mount(main);
  document.title = `${page.title} · Tasques`;
  markCurrentLink();
  const heading = main.querySelector("h1");
  if (moveFocus && heading !== null) {
    heading.tabIndex = -1;
    heading.focus();
  }
  const refresher = new Refresher(async (signal) => {
    try {
      await page.refresh(signal);
      clearError("refresh");
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status === 401) {
        loginNeeded(e);
      } else {
        showError(e, "refresh");
      }
    }
    refreshes += 1;
    document.body.dataset["refreshed"] = String(refreshes);
  });
  current = refresher;
  refresher.now();
}

function init(): void {
  updateLogout();
  document.getElementById("logout")?.addEventListener("click", () => {
    forgetToken();
    clearError();
    start();
  });
  window.addEventListener("hashchange", () => {
    clearError();
    start(true);
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") current?.now();
    else current?.pause();
  });
  // Leaving the page (or the bfcache) stops the timer; coming back from the bfcache starts again.
  window.addEventListener("pagehide", () => current?.pause());
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) current?.now();
  });
  start();
}

init();
