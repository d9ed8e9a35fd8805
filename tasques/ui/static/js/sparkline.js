// A small inline SVG line of per-minute counts, built with DOM APIs (no style attributes: the CSP forbids them).
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 60;
const HEIGHT = 16;
export function sparkline(values) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
    svg.setAttribute("width", String(WIDTH));
    svg.setAttribute("height", String(HEIGHT));
    svg.setAttribute("class", "sparkline");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const max = Math.max(1, ...values);
    const step = values.length > 1 ? WIDTH / (values.length - 1) : 0;
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(HEIGHT - 1 - (v / max) * (HEIGHT - 2)).toFixed(1)}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "currentColor");
    line.setAttribute("stroke-width", "1.5");
    svg.append(line);
    return svg;
}
