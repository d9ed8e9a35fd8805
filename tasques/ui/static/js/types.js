// Response shapes of the public API (openapi.yaml), only the fields the dashboard reads.
export const TASK_STATES = ["waiting", "queued", "claimed", "failed", "done", "dead", "cancelled"];
