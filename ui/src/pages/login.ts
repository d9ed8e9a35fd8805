// The token form, shown when a call answers 401. The token goes to sessionStorage, then the page is retried.

import { h, replaceChildren } from "../dom.js";
import { storeToken } from "../token.js";

export function showLogin(main: HTMLElement, done: () => void): void {
  const input = h("input", { id: "token", type: "password", name: "token", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    { "aria-label": "Log in", class: "login" },
    h("div", { class: "field" }, h("label", { for: "token" }, "API token"), input),
    h("button", { type: "submit" }, "Log in"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (token === "") return;
    storeToken(token);
    done();
  });
  replaceChildren(
    main,
    h("h1", {}, "Log in"),
    h("p", {}, "This Tasques server needs an API token (a tq_ token or a JWT). It is kept for this tab only."),
    form,
  );
  document.title = "Log in · Tasques";
  input.focus();
}
