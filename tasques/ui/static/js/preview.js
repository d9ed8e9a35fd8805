// Next fire times of a schedule expression (GET /schedules/preview), cached until the first one has passed.
import { get } from "./api.js";
const cache = new Map();
export async function nextFireTimes(expression, signal) {
    const known = cache.get(expression);
    const first = known?.[0];
    if (known !== undefined && first !== undefined && Date.parse(first) > Date.now())
        return known;
    const preview = await get("/schedules/preview", { expression, count: 5 }, signal);
    cache.set(expression, preview.next);
    return preview.next;
}
