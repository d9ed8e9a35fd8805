// The live refresh: one run at a time, every 2 s, only while the document is visible.
export const REFRESH_INTERVAL_MS = 2000;
export class Refresher {
    work;
    timer;
    running = false;
    again = false;
    stopped = false;
    controller = new AbortController();
    constructor(work) {
        this.work = work;
    }
    /** Refresh as soon as possible: now, or right after the run in flight (never two at once). */
    now() {
        if (this.stopped)
            return;
        if (this.running) {
            this.again = true;
            return;
        }
        this.cancelTimer();
        void this.run();
    }
    /** Hidden tab: no timer, no requests, until `now()` is called again. */
    pause() {
        this.cancelTimer();
        this.again = false;
    }
    /** For good: the page is gone; a request in flight is aborted. */
    stop() {
        this.stopped = true;
        this.pause();
        this.controller.abort();
    }
    cancelTimer() {
        if (this.timer !== undefined)
            clearTimeout(this.timer);
        this.timer = undefined;
    }
    async run() {
        if (document.visibilityState !== "visible")
            return;
        this.running = true;
        try {
            await this.work(this.controller.signal);
        }
        finally {
            this.running = false;
        }
        if (this.stopped)
            return;
        if (this.again) {
            this.again = false;
            void this.run();
        }
        else if (document.visibilityState === "visible") {
            this.timer = setTimeout(() => {
                this.timer = undefined;
                void this.run();
            }, REFRESH_INTERVAL_MS);
        }
    }
}
