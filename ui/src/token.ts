// The caller's API token, kept for this browser tab only (sessionStorage), never in a cookie or the URL.

const KEY = "tasques.token";

export function storedToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}
