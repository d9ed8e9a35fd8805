// Response shapes of the public API (openapi.yaml), only the fields the dashboard reads.

export const TASK_STATES = ["waiting", "queued", "claimed", "failed", "done", "dead", "cancelled"] as const;
export type TaskState = (typeof TASK_STATES)[number];
export type StateCounts = Partial<Record<TaskState, number | null>>;

export interface ErrorDetail {
  field: string;
  problem: string;
}

export interface Metadata {
  created_at: string;
  modified_at: string;
  version?: unknown;
}

export interface QueueOverview {
  queue: string;
  counts: StateCounts;
  paused: boolean;
  oldest_queued_age_seconds: number;
  finished_per_minute: number[];
}

export interface Overview {
  store: string;
  server: { id: string; leader: boolean };
  leader: { holder: string; expires_at: string } | null;
  minutes: string[];
  queues: QueueOverview[];
}

export interface Report {
  at: string;
  data?: Record<string, unknown> | null;
}

export interface Result {
  at: string;
  success?: Record<string, unknown> | null;
  failure?: Record<string, unknown> | null;
}

export interface LastClaimed {
  worker_id: string;
  claim_id?: string | null;
  claimed_at: string;
  times_out_at: string;
  last_report?: Report | null;
  result?: Result | null;
}

export interface DependencyState {
  queue: string;
  id: string;
  state: TaskState | "missing";
}

export interface Task {
  id: string;
  queue: string;
  kind: string;
  state: TaskState;
  priority: number;
  run_at: string;
  attempted: number;
  last_enqueued_at: string;
  recurring_task_id?: string | null;
  last_claimed?: LastClaimed | null;
  http_request?: Record<string, unknown> | null;
  metadata: Metadata;
  dependencies?: DependencyState[] | null;
  [field: string]: unknown;
}

export interface TaskList {
  tasks: Task[];
  next_cursor?: string | null;
}

export interface Attempt {
  run?: number;
  attempt: number;
  worker_id: string;
  started_at: string;
  ended_at: string;
  duration_ms: number;
  success: boolean;
  status_code?: number | null;
  error?: string | null;
}

export interface Timeline {
  attempts: Attempt[];
}

export interface QueueSettings {
  queue: string;
  paused?: boolean;
  max_dispatches_per_second?: number | null;
  max_concurrent_dispatches?: number | null;
  retry_policy?: Record<string, unknown> | null;
  metadata: Metadata;
}

export interface QueueDetail {
  queue: string;
  counts: StateCounts;
  paused: boolean;
  settings: QueueSettings;
  oldest_queued_age_seconds: number;
  finished_last_minute: number;
}

export interface RunNowResult {
  queue: string;
  run_now: number;
}

export interface TaskDefinition {
  queue: string;
  kind: string;
  args?: unknown;
  [field: string]: unknown;
}

export interface RecurringTask {
  id: string;
  schedule_expression: string;
  task_definition: TaskDefinition;
  skip_if_outstanding_tasks_exist?: boolean;
  loaded_at?: string | null;
  last_slot_at?: string | null;
  last_error?: string | null;
  last_error_at?: string | null;
  metadata: Metadata;
}

export interface SchedulePreview {
  expression: string;
  next: string[];
}

export interface WorkerInfo {
  id: string;
  state: "active" | "draining" | "gone";
  queues: string[];
  first_seen_at: string;
  last_seen_at: string;
  claims_held: number;
  version?: string | null;
  host?: string | null;
  draining: boolean;
}

export interface WorkerList {
  workers: WorkerInfo[];
}

export interface ReplayItem {
  queue: string;
  id: string;
  status: "replayed" | "not_dead" | "not_found";
}

export interface ReplayResult {
  results: ReplayItem[];
  more: boolean;
}
