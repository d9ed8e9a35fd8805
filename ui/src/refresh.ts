// The live refresh: one run at a time, every 2 s, only while the document is visible.

export const REFRESH_INTERVAL_MS = 2000;

export class Refresher {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private again = false;
  private stopped = false;
  private readonly controller = new AbortController();

  constructor(private readonly work: (signal: AbortSignal) => Promise<void>) {}

  /** Refresh as soon as possible: now, or right after the run in flight (never two at once). */
  now(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.cancelTimer();
    void this.run();
  }

  /** Hidden tab: no timer, no requests, until `now()` is called again. */
  pause(): void {
    this.cancelTimer();
    this.again = false;
  }

  /** For good: the page is gone; a request in flight is aborted. */
  stop(): void {
    this.stopped = true;
    this.pause();
    this.controller.abort();
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async run(): Promise<void> {
    if (document.visibilityState !== "visible") return;
    this.running = true;
    try {
      await this.work(this.controller.signal);
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (this.again) {
      this.again = false;
      void this.run();
    } else if (document.visibilityState === "visible") {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.run();
      }, REFRESH_INTERVAL_MS);
    }
  }
}
