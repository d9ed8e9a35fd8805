// What every page gives the app: its static parts once (mount), its data on every refresh.
export {};
