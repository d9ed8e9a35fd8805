// The caller's API token, kept for this browser tab only (sessionStorage), never in a cookie or the URL.
const KEY = "tasques.token";
export function storedToken() {
    return sessionStorage.getItem(KEY);
}
export function storeToken(token) {
    sessionStorage.setItem(KEY, token);
}
export function forgetToken() {
    sessionStorage.removeItem(KEY);
}
