// Re-render a region only when its data changed: a refresh then keeps focus, selection and scroll.

const shown = new WeakMap<Element, string>();

export function renderIfChanged(region: Element, data: unknown, build: () => void): void {
  const signature = JSON.stringify(data);
  if (shown.get(region) === signature) return;
  shown.set(region, signature);
  build();
}

export function forget(region: Element): void {
  shown.delete(region);
}
