// Calls to loglake's API with the session cookie: every state-changing call carries the session's
// CSRF token; an API error becomes an ApiError with the server's message (which says what to do).
import { h } from "./dom.js";

let csrfToken = "";

export function setCsrfToken(token) {
  csrfToken = token;
}

export class ApiError extends Error {
  constructor(status, code, message, details = [], retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter; // seconds, from a 429's or 503's Retry-After
  }
}

export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export async function request(path, { method = "GET", params, body, signal, accept = "application/json" } = {}) {
  const headers = { accept };
  if (method !== "GET") headers["x-csrf-token"] = csrfToken;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(url(path, params), {
      method, headers, signal, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "loglake did not answer; check that the server is running, then retry");
  }
  if (response.status === 401 && path !== "/session") signIn("Your session has ended; sign in again.");
  if (!response.ok) throw await errorOf(response);
  return response;
}

// To the sign-in page, which comes back to this page once signed in.
export function signIn(error) {
  location.assign(url("/login", { error, next: location.pathname + location.search + location.hash }));
}

export async function api(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

async function errorOf(response) {
  try {
    const { error } = await response.json();
    const retryAfter = Number(response.headers.get("retry-after")) || null;
    return new ApiError(response.status, error.code, error.message, error.details || [], retryAfter);
  } catch {
    return new ApiError(response.status, "http", `the server answered ${response.status} ${response.statusText}; retry, and see the server's log if it persists`);
  }
}

// An API error shown where its content would have been: the message, each detail, what to do (a page's
// own advice, or the scopes' for a 403), and a retry.
export function errorBox(error, retry, advice) {
  const details = (error.details || []).map((d) => [d.field, d.reason || d.message].filter(Boolean).join(": "))
    .filter((text) => !error.message.includes(text)).map((text) => h("li", { text }));
  return h("div", { class: "error-box", role: "alert" },
    h("strong", { text: error.status ? `Error ${error.status}` : "Error" }),
    h("p", { text: error.message }),
    details.length ? h("ul", {}, details) : null,
    advice ? h("p", { text: advice })
      : error.status === 403 ? h("p", { class: "muted", text: "Your key's scopes do not allow this; sign in with a key that has them." }) : null,
    retry ? h("button", { type: "button", text: "Retry", onclick: retry }) : null);
}
