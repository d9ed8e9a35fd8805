// Re-render a region only when its data changed: a refresh then keeps focus, selection and scroll.
const shown = new WeakMap();
export function renderIfChanged(region, data, build) {
    const signature = JSON.stringify(data);
    if (shown.get(region) === signature)
        return;
    shown.set(region, signature);
    build();
}
export function forget(region) {
    shown.delete(region);
}
