// Next fire times of a schedule expression (GET /schedules/preview), cached until the first one has passed;
// a refused expression is remembered for a while so a refresh does not ask again every 2 s.
import { get } from "./api.js";
const ERROR_TTL_MS = 30_000;
const cache = new Map();
export async function nextFireTimes(expression, signal) {
    const known = cache.get(expression);
    if (known !== undefined) {
        if ("error" in known) {
            if (known.until > Date.now())
                throw known.error;
        }
        else {
            const first = known.next[0];
            if (first !== undefined && Date.parse(first) > Date.now())
                return known.next;
        }
    }
    try {
        const preview = await get("/schedules/preview", { expression, count: 5 }, signal);
        cache.set(expression, { next: preview.next });
        return preview.next;
    }
    catch (e) {
        if (!signal?.aborted)
            cache.set(expression, { error: e, until: Date.now() + ERROR_TTL_MS });
        throw e;
    }
}
