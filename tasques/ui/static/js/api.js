// The one way the dashboard talks to Tasques: the public API, with the caller's token as a Bearer header.
import { storedToken } from "./token.js";
export class ApiError extends Error {
    status;
    details;
    constructor(status, message, details = []) {
        super(message);
        this.status = status;
        this.details = details;
        this.name = "ApiError";
    }
}
/** A path from segments, each encoded: ids and queue names may hold ':', '@', '+', '=' and '~'. */
export function path(...segments) {
    return "/" + segments.map(encodeURIComponent).join("/");
}
function withQuery(url, query) {
    if (query === undefined)
        return url;
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
        if (value !== null && value !== undefined && value !== "")
            params.append(name, String(value));
    }
    const text = params.toString();
    return text === "" ? url : `${url}?${text}`;
}
function errorOf(status, statusText, body) {
    if (typeof body === "object" && body !== null && typeof body.message === "string") {
        const { message, details } = body;
        const fields = Array.isArray(details)
            ? details.filter((d) => typeof d === "object" && d !== null && typeof d.field === "string" && typeof d.problem === "string")
            : [];
        return new ApiError(status, message, fields);
    }
    return new ApiError(status, `${status} ${statusText || "error"}`);
}
export async function call(method, url, options = {}) {
    const headers = { Accept: "application/json" };
    const token = storedToken();
    if (token !== null)
        headers["Authorization"] = `Bearer ${token}`;
    const init = { method, headers, cache: "no-store" };
    if (options.body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(options.body);
    }
    if (options.signal !== undefined)
        init.signal = options.signal;
    let response;
    try {
        response = await fetch(withQuery(url, options.query), init);
    }
    catch (e) {
        if (e instanceof DOMException && e.name === "AbortError")
            throw e;
        throw new ApiError(0, "the server did not answer (is it running?)");
    }
    const text = await response.text();
    let body = null;
    if (text !== "") {
        try {
            body = JSON.parse(text);
        }
        catch {
            body = null;
        }
    }
    if (!response.ok)
        throw errorOf(response.status, response.statusText, body);
    return body;
}
export const get = (url, query, signal) => call("GET", url, { ...(query === undefined ? {} : { query }), ...(signal === undefined ? {} : { signal }) });
