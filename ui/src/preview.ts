// Next fire times of a schedule expression (GET /schedules/preview), cached until the first one has passed.

import { get } from "./api.js";
import type { SchedulePreview } from "./types.js";

const cache = new Map<string, string[]>();

export async function nextFireTimes(expression: string, signal?: AbortSignal): Promise<string[]> {
  const known = cache.get(expression);
  const first = known?.[0];
  if (known !== undefined && first !== undefined && Date.parse(first) > Date.now()) return known;
  const preview = await get<SchedulePreview>("/schedules/preview", { expression, count: 5 }, signal);
  cache.set(expression, preview.next);
  return preview.next;
}
