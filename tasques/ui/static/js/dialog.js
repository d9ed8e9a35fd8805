// Confirmation in a modal <dialog>: focus moves into it, Escape and "Cancel" answer no.
import { h, button } from "./dom.js";
let dialogs = 0;
export function confirmDialog(options) {
    return new Promise((resolve) => {
        const n = ++dialogs;
        const titleId = `dialog-title-${n}`;
        const dialog = h("dialog", { "aria-labelledby": titleId, class: "confirm" });
        let answer = false;
        const ok = button(options.confirmLabel, () => {
            answer = true;
            dialog.close();
        }, { class: "danger" });
        const cancel = button("Cancel", () => dialog.close());
        let input = null;
        if (options.typed !== undefined) {
            const expected = options.typed.expected;
            input = h("input", { id: `dialog-input-${n}`, type: "text", autocomplete: "off", spellcheck: "false" });
            ok.disabled = true;
            input.addEventListener("input", () => {
                ok.disabled = input?.value !== expected;
            });
        }
        dialog.append(h("h2", { id: titleId }, options.title), h("p", {}, options.text), input === null ? "" : h("div", { class: "field" }, h("label", { for: input.id }, options.typed?.label ?? ""), input), h("div", { class: "buttons" }, ok, cancel));
        dialog.addEventListener("close", () => {
            dialog.remove();
            resolve(answer);
        });
        document.body.append(dialog);
        dialog.showModal();
        (input ?? cancel).focus();
    });
}
