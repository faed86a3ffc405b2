// The API client and the session. The access token lives only in this module's memory; the
// refresh token in sessionStorage, so a reload of the same tab stays logged in while other tabs,
// and the browser once closed, do not. Tokens travel only in the Authorization header, never in
// cookies, so another site cannot make the browser send them (no CSRF); nothing from the API is
// ever parsed as HTML (dom.js) and the CSP allows no inline script, which is what keeps XSS from
// reading either token.

const REFRESH_KEY = "transnotes.refresh";
const USER_KEY = "transnotes.username";

let accessToken = null;
let refreshing = null;
const sessionListeners = new Set();

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// What a failed request means to a person: the API's own detail when it gave one.
export function describeError(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  if (error.status === 0) return "The server cannot be reached. Check the connection and try again.";
  const body = error.body;
  if (body && typeof body === "object") {
    if (typeof body.detail === "string") return body.detail;
    const messages = Object.values(body).flat().filter((m) => typeof m === "string");
    if (messages.length) return messages.join(" ");
  }
  return `The server answered ${error.status}.`;
}

export function onSessionChange(listener) {
  sessionListeners.add(listener);
}

function notifySession() {
  for (const listener of sessionListeners) listener(isLoggedIn());
}

export function isLoggedIn() {
  return accessToken !== null || sessionStorage.getItem(REFRESH_KEY) !== null;
}

export function username() {
  return sessionStorage.getItem(USER_KEY) || "";
}

export function currentAccessToken() {
  return accessToken;
}

async function send(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    throw new ApiError(0, null, `network: ${error.message}`);
  }
  let data = null;
  if (response.status !== 204) {
    const text = await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { detail: text.slice(0, 200) };
      }
    }
  }
  if (!response.ok) throw new ApiError(response.status, data, `${method} ${path}: ${response.status}`);
  return { data, response };
}

// A new access token from the refresh token; concurrent callers share one request. Resolves to
// false when the session is over (no refresh token, or the server refused it).
export function refreshAccess() {
  if (refreshing) return refreshing;
  const refresh = sessionStorage.getItem(REFRESH_KEY);
  if (!refresh) return Promise.resolve(false);
  refreshing = send("POST", "/auth/token/refresh/", { refresh })
    .then(({ data }) => {
      accessToken = data.access;
      if (data.refresh) sessionStorage.setItem(REFRESH_KEY, data.refresh);
      return true;
    })
    .catch((error) => {
      if (error instanceof ApiError && error.status === 0) throw error;  // offline: not logged out
      endSession();
      return false;
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

function endSession() {
  const wasIn = isLoggedIn();
  accessToken = null;
  sessionStorage.removeItem(REFRESH_KEY);
  sessionStorage.removeItem(USER_KEY);
  if (wasIn) notifySession();
}

// An authenticated call: on 401 it refreshes the access token once and tries again.
export async function call(method, path, body) {
  if (!accessToken && !(await refreshAccess())) {
    throw new ApiError(401, { detail: "Please log in." }, "no session");
  }
  try {
    return await send(method, path, body, accessToken);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    if (!(await refreshAccess())) throw error;
    return send(method, path, body, accessToken);
  }
}

export async function logIn(user, password) {
  const { data } = await send("POST", "/auth/token/", { username: user, password });
  accessToken = data.access;
  sessionStorage.setItem(REFRESH_KEY, data.refresh);
  sessionStorage.setItem(USER_KEY, user);
  notifySession();
}

export async function signUp(user, email, password) {
  const body = { username: user, password };
  if (email) body.email = email;
  await send("POST", "/auth/register/", body);
  await logIn(user, password);
}

export async function logOut() {
  const refresh = sessionStorage.getItem(REFRESH_KEY);
  endSession();
  // The refresh token stops working server-side too; failing that (offline) it is at least gone
  // from this tab, and the access token expires within minutes.
  if (refresh) await send("POST", "/auth/token/blacklist/", { refresh }).catch(() => {});
}

// rel="next" of a Link header, as a path under /api/v1 ("/notes/?limit=…"), or null.
export function nextLink(response) {
  const header = response.headers.get("Link") || "";
  for (const part of header.split(",")) {
    const match = /<([^>]*)>\s*;\s*rel="?next"?/.exec(part);
    if (!match) continue;
    const url = new URL(match[1], location.href);
    const at = url.pathname.indexOf("/api/v1/");
    return at < 0 ? null : url.pathname.slice(at + "/api/v1".length) + url.search;
  }
  return null;
}

let languagesPromise = null;

// GET /languages/ once per page load: the pairs change only with the server's engines.
export function languages() {
  if (!languagesPromise) {
    languagesPromise = call("GET", "/languages/").then(({ data }) => data);
    languagesPromise.catch(() => {
      languagesPromise = null;
    });
  }
  return languagesPromise;
}
