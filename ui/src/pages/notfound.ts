// A hash no route knows.

import { h, replaceChildren } from "../dom.js";
import type { Page } from "../page.js";
import { href } from "../router.js";

export function notFoundPage(hash: string): Page {
  return {
    title: "Not found",
    mount(main) {
      replaceChildren(main, h("h1", {}, "Not found"), h("p", {}, `No page at ${hash}. `, h("a", { href: href.overview() }, "Overview")));
    },
    async refresh() {},
  };
}
