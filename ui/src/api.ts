// The one way the dashboard talks to Tasques: the public API, with the caller's token as a Bearer header.

import { storedToken } from "./token.js";
import type { ErrorDetail } from "./types.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface CallOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
}

/** A path from segments, each encoded: ids and queue names may hold ':', '@', '+', '=' and '~'. */
export function path(...segments: string[]): string {
  return "/" + segments.map(encodeURIComponent).join("/");
}

function withQuery(url: string, query: Query | undefined): string {
  if (query === undefined) return url;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") params.append(name, String(value));
  }
  const text = params.toString();
  return text === "" ? url : `${url}?${text}`;
}

function errorOf(status: number, statusText: string, body: unknown): ApiError {
  if (typeof body === "object" && body !== null && typeof (body as { message?: unknown }).message === "string") {
    const { message, details } = body as { message: string; details?: unknown };
    const fields = Array.isArray(details)
      ? details.filter(
          (d): d is ErrorDetail =>
            typeof d === "object" && d !== null && typeof d.field === "string" && typeof d.problem === "string",
        )
      : [];
    return new ApiError(status, message, fields);
  }
  return new ApiError(status, `${status} ${statusText || "error"}`);
}

export async function call<T>(method: string, url: string, options: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = storedToken();
  if (token !== null) headers["Authorization"] = `Bearer ${token}`;
  const init: RequestInit = { method, headers, cache: "no-store" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  if (options.signal !== undefined) init.signal = options.signal;
  let response: Response;
  try {
    response = await fetch(withQuery(url, options.query), init);
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "the server did not answer (is it running?)");
  }
  const text = await response.text();
  let body: unknown = null;
  if (text !== "") {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) throw errorOf(response.status, response.statusText, body);
  return body as T;
}

export const get = <T>(url: string, query?: Query, signal?: AbortSignal): Promise<T> =>
  call<T>("GET", url, { ...(query === undefined ? {} : { query }), ...(signal === undefined ? {} : { signal }) });
