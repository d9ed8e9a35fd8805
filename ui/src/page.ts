// What every page gives the app: its static parts once (mount), its data on every refresh.

export interface PageContext {
  /** Refresh now (after an action), or right after the refresh in flight. */
  refreshNow(): void;
  navigate(hash: string): void;
}

export interface Page {
  readonly title: string;
  mount(main: HTMLElement): void;
  refresh(signal: AbortSignal): Promise<void>;
}
