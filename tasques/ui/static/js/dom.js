// Building DOM nodes without innerHTML: every text from the API goes in as a text node.
export function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false)
            continue;
        el.setAttribute(name, value === true ? "" : String(value));
    }
    append(el, children);
    return el;
}
export function append(parent, children) {
    for (const child of children.flat()) {
        if (child === null || child === undefined || child === false)
            continue;
        parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
}
export function replaceChildren(parent, ...children) {
    parent.replaceChildren();
    append(parent, children);
}
export function button(label, onClick, attrs = {}) {
    const b = h("button", { type: "button", ...attrs }, label);
    b.addEventListener("click", onClick);
    return b;
}
/** A labelled input: the label's `for` names the input, so every field has an accessible name. */
export function field(label, input) {
    return h("div", { class: "field" }, h("label", { for: input.id }, label), input);
}
