// Drives a Tasques server through openapi-fetch, typed by the `paths` that openapi-typescript generates from
// openapi.yaml into ./schema.d.ts (see scripts/gen-clients): create -> claim -> report -> done of one task, then
// the same for two more through the batch endpoints (one POST /tasques/reports, one POST /tasques/done that also
// names a missing task).
//
//   node dist/smoke.js <base-url> <queue> <worker-id> <result-json>
//
// On success it prints {"queue": ..., "id": ..., "batch_ids": [...]} on stdout; batch task i is finished with
// {"item": i, "result": <result-json>}.
import { deepStrictEqual, ok as assert } from "node:assert/strict";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Client = ReturnType<typeof createClient<paths>>;
type Task = components["schemas"]["Task"];
type TaskUpdate = components["schemas"]["TaskUpdate"];
type UpdateItem = components["schemas"]["UpdateItem"];
type UpdateResult = components["schemas"]["UpdateResult"];
type Worker = { header: { "X-TASQUES-WORKER-ID": string } };
type JsonObject = { [key: string]: unknown };

function ok<T>(step: string, result: { data?: T; error?: unknown; response: Response }, status: number): T {
  if (result.response.status !== status || result.data === undefined) {
    throw new Error(`${step}: HTTP ${result.response.status}, want ${status}: ${JSON.stringify(result.error)}`);
  }
  return result.data;
}

// A batch answer's items: one per request item, with the wanted per-item statuses, a task for each 200.
function items(step: string, result: UpdateResult, want: number[]): UpdateItem[] {
  deepStrictEqual(
    result.results.map((i) => i.status),
    want,
    `${step}: ${JSON.stringify(result)}`,
  );
  for (const item of result.results) {
    assert(item.status !== 200 || item.task, `${step}: no task in ${JSON.stringify(item)}`);
  }
  return result.results;
}

// Creates two tasks and claims both with one call; returns each one's claim id, in creation order.
async function claimTwo(client: Client, worker: Worker, queue: string, args: JsonObject): Promise<Map<string, string>> {
  const ids: string[] = [];
  for (let n = 0; n < 2; n++) {
    const created: Task = ok(
      "batch create",
      await client.POST("/tasques", { body: { queue, kind: "typescriptSmoke", args } }),
      201,
    );
    ids.push(created.id);
  }
  const claimed: Task[] = ok(
    "batch claim",
    await client.POST("/tasques/claims", { params: worker, body: { queues: [queue], amount: 2, block_for: "1s" } }),
    200,
  );
  const workerId = worker.header["X-TASQUES-WORKER-ID"];
  deepStrictEqual(
    claimed.map((t) => [t.id, t.state, t.last_claimed?.worker_id]).sort(),
    ids.map((id) => [id, "claimed", workerId]).sort(),
  );
  const claimIds = new Map(claimed.map((t) => [t.id, t.last_claimed?.claim_id]));
  return new Map(
    ids.map((id) => {
      const claimId = claimIds.get(id);
      assert(typeof claimId === "string" && claimId !== "", `batch claim: no claim id for ${id}`);
      return [id, claimId];
    }),
  );
}

// Two more tasks: claimed at once, reported on with one batch call and finished with another.
async function batch(
  client: Client,
  worker: Worker,
  queue: string,
  args: JsonObject,
  progress: JsonObject,
  result: JsonObject,
): Promise<string[]> {
  const claimIds = await claimTwo(client, worker, queue, args);
  const ids = [...claimIds.keys()];
  const reports: TaskUpdate[] = ids.map((id) => ({ queue, id, claim_id: claimIds.get(id) ?? null, data: progress }));
  const reported = items(
    "batch report",
    ok("batch report", await client.POST("/tasques/reports", { params: worker, body: { tasks: reports } }), 200),
    [200, 200],
  );
  deepStrictEqual(
    reported.map((i) => [i.task?.id, i.task?.state, i.task?.last_claimed?.last_report?.data]),
    ids.map((id) => [id, "claimed", progress]),
  );

  const results: JsonObject[] = ids.map((_, n) => ({ item: n, result }));
  const [first, second] = ids as [string, string];
  const dones: TaskUpdate[] = [
    { queue, id: first, claim_id: claimIds.get(first) ?? null, data: results[0] ?? null },
    { queue, id: second, data: results[1] ?? null }, // worker check only
    { queue, id: `missing-${first}`, data: results[0] ?? null },
  ];
  const done = items(
    "batch done",
    ok("batch done", await client.POST("/tasques/done", { params: worker, body: { tasks: dones } }), 200),
    [200, 200, 404],
  );
  deepStrictEqual(
    done.slice(0, 2).map((i) => [i.task?.id, i.task?.state, i.task?.last_claimed?.result?.success]),
    ids.map((id, n) => [id, "done", results[n]]),
  );
  const missing = done[2];
  assert(missing && !missing.task && missing.error?.message, `batch done: ${JSON.stringify(missing)}`);
  return ids;
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

  const batchIds = await batch(client, worker, queue, args, progress, result);
  console.log(JSON.stringify({ queue, id: created.id, batch_ids: batchIds }));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error("typescript smoke:", err);
  process.exit(1);
});
