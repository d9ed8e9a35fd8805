// Drives a Tasques server through openapi-fetch, typed by the `paths` that openapi-typescript generates from
// openapi.yaml into ./schema.d.ts (see scripts/gen-clients): create -> claim -> report -> done.
//
//   node dist/smoke.js <base-url> <queue> <worker-id> <result-json>
//
// On success it prints {"queue": ..., "id": ...} of the finished task on stdout.
import { deepStrictEqual } from "node:assert/strict";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Task = components["schemas"]["Task"];
type JsonObject = { [key: string]: unknown };

function ok<T>(step: string, result: { data?: T; error?: unknown; response: Response }, status: number): T {
  if (result.response.status !== status || result.data === undefined) {
    throw new Error(`${step}: HTTP ${result.response.status}, want ${status}: ${JSON.stringify(result.error)}`);
  }
  return result.data;
}

async function main(argv: string[]): Promise<void> {
  const [baseUrl, queue, workerId, resultJson] = argv;
  if (baseUrl === undefined || queue === undefined || workerId === undefined || resultJson === undefined) {
    throw new Error("usage: smoke <base-url> <queue> <worker-id> <result-json>");
  }
  const result = JSON.parse(resultJson) as JsonObject;
  const client = createClient<paths>({ baseUrl });
  const worker = { header: { "X-TASQUES-WORKER-ID": workerId } };
  const args: JsonObject = { greeting: "hello", n: 1 };

  const created: Task = ok(
    "create",
    await client.POST("/tasques", { body: { queue, kind: "typescriptSmoke", args } }),
    201,
  );
  deepStrictEqual([created.state, created.queue, created.args], ["queued", queue, args]);
  const path = { path: { queue, id: created.id } };

  const claimed: Task[] = ok(
    "claim",
    await client.POST("/tasques/claims", { params: worker, body: { queues: [queue], amount: 1, block_for: "1s" } }),
    200,
  );
  deepStrictEqual(
    claimed.map((t) => [t.id, t.state, t.last_claimed?.worker_id]),
    [[created.id, "claimed", workerId]],
  );

  const progress: JsonObject = { progress: 50 };
  const reported: Task = ok(
    "report",
    await client.PUT("/tasques/reports/{queue}/{id}", { params: { ...path, ...worker }, body: { data: progress } }),
    200,
  );
  deepStrictEqual(reported.last_claimed?.last_report?.data, progress);

  const done: Task = ok(
    "done",
    await client.PUT("/tasques/done/{queue}/{id}", { params: { ...path, ...worker }, body: { data: result } }),
    200,
  );
  deepStrictEqual([done.state, done.last_claimed?.result?.success], ["done", result]);

  console.log(JSON.stringify({ queue, id: created.id }));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error("typescript smoke:", err);
  process.exit(1);
});
