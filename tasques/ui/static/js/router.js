// Hash routes: #/, #/queues/<q>, #/tasks/<q>/<id>, #/recurring, #/workers, #/dead.
// ':', '@', '+', '=' are legal in a fragment: left readable in links; decodeURIComponent takes both forms.
function segment(s) {
    return encodeURIComponent(s).replace(/%3A/gi, ":").replace(/%40/gi, "@").replace(/%2B/gi, "+").replace(/%3D/gi, "=");
}
export const href = {
    overview: () => "#/",
    queue: (queue) => `#/queues/${segment(queue)}`,
    task: (queue, id) => `#/tasks/${segment(queue)}/${segment(id)}`,
    recurring: () => "#/recurring",
    workers: () => "#/workers",
    dead: () => "#/dead",
};
function decode(s) {
    try {
        return decodeURIComponent(s);
    }
    catch {
        return null;
    }
}
export function parse(hash) {
    const parts = hash.replace(/^#\/?/, "").split("/");
    const [head, ...rest] = parts;
    const args = rest.map(decode);
    if (args.some((a) => a === null || a === ""))
        return { page: "unknown", hash };
    const [a, b] = args;
    switch (head) {
        case "":
        case undefined:
            return rest.length === 0 ? { page: "overview" } : { page: "unknown", hash };
        case "queues":
            return args.length === 1 && a !== undefined ? { page: "queue", queue: a } : { page: "unknown", hash };
        case "tasks":
            return args.length === 2 && a !== undefined && b !== undefined
                ? { page: "task", queue: a, id: b }
                : { page: "unknown", hash };
        case "recurring":
        case "workers":
        case "dead":
            return rest.length === 0 ? { page: head } : { page: "unknown", hash };
        default:
            return { page: "unknown", hash };
    }
}
