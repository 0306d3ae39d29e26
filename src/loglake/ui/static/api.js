// Calls to loglake's API with the session cookie: every state-changing call carries the session's
// CSRF token; an API error becomes an ApiError with the server's message (which says what to do).
// Calls are spaced to fit the key's rate limit (a page asks several things at once, which a key limited
// to a few requests a second would refuse), and a 429 anyway (another tab or a script on the same key)
// is waited out as its Retry-After says, a few times, with a notice on the page while waiting.
import { h, timesShown } from "./dom.js";
import { parseJson } from "./json.js";

const RATE_LIMIT_TRIES = 4;
const LONGEST_WAIT_S = 10; // a longer Retry-After (a spent daily budget) is shown as the error it is
const LEEWAY_MS = 50; // requests reach the server a little after they leave, not all equally late
const ASK_AGAIN_MS = 2000; // how often a page whose server did not answer asks whether it is back

let csrfToken = "";
let bucket = null; // the key's token bucket as this page spends it: { rate, burst, tokens, at }
let waiting = 0; // calls waiting out a 429

export function setCsrfToken(token) {
  csrfToken = token;
}

// The key's requests per second and burst (from the session); none without auth. The bucket starts one
// request short: signing in, which brought the browser here, took one.
export function setRateLimit(rate, burst) {
  bucket = rate && burst ? { rate, burst, tokens: burst - 1, at: performance.now() } : null;
}

// Waits until the key's bucket has a request for this call. The call takes its token at once (the
// tokens may go below zero), so calls made together leave one after another, 1/rate apart.
function turn(signal) {
  if (!bucket) return Promise.resolve();
  const now = performance.now();
  bucket.tokens = Math.min(bucket.burst, bucket.tokens + ((now - bucket.at) / 1000) * bucket.rate) - 1;
  bucket.at = now;
  if (bucket.tokens >= 0) return Promise.resolve();
  // a call given up while it waits (its page left) sends nothing: its token goes back to the calls after it
  const taken = bucket;
  return sleep((-bucket.tokens / bucket.rate) * 1000 + LEEWAY_MS, signal).catch((reason) => {
    taken.tokens = Math.min(taken.burst, taken.tokens + 1);
    throw reason;
  });
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}

// Sleeps out a 429's Retry-After with "Waiting for the rate limit" said in the shell's live region.
async function waitOut(seconds, signal) {
  const notice = document.getElementById("waiting");
  waiting++;
  notice.textContent = `Waiting for the rate limit of this key (the server asked for ${seconds} s)…`;
  try {
    await sleep(seconds * 1000, signal);
  } finally {
    if (--waiting === 0) notice.textContent = "";
  }
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
  for (let tries = 1; ; tries++) {
    await turn(signal);
    try {
      response = await fetch(url(path, params), {
        method, headers, signal, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "network", "loglake did not answer; check that the server is running, then retry");
    }
    // a 429 is a refusal before anything was done, so even a change is safe to send again
    const wait = response.status === 429 ? Number(response.headers.get("retry-after")) : 0;
    if (!(wait > 0 && wait <= LONGEST_WAIT_S) || tries === RATE_LIMIT_TRIES) break;
    await waitOut(wait, signal);
  }
  if (response.status === 401 && path !== "/session") signIn("session_ended");
  if (!response.ok) throw await errorOf(response);
  return response;
}

// To the sign-in page, which comes back to this page once signed in; `reason` is a code of ui/sign_in.py. Once: a
// view's requests meet the 401 together (three of Explore's), and each sent the page again, aborting the one before.
let signingIn = false;
// (a page the browser's Back brings back from its cache, as it was, is sent again by the next 401)
window.addEventListener("pageshow", (event) => { if (event.persisted) signingIn = false; });

export function signIn(reason) {
  if (signingIn) return;
  signingIn = true;
  location.assign(url("/login", { error: reason, next: location.pathname + location.search + location.hash }));
}

// `asSent`: the answer's numbers as parseJson's asSent reads them (records' attributes, shown as sent)
export async function api(path, options = {}) {
  const response = await request(path, options);
  return response.status === 204 ? null : parseJson(await response.text(), { asSent: options.asSent });
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

// Resolves once loglake answers again (any answer of GET /healthz, which needs no session), asking every
// ASK_AGAIN_MS: for a page that found the server down to draw itself again when it is back.
export async function untilAnswering(signal) {
  for (;;) {
    await sleep(ASK_AGAIN_MS, signal);
    try {
      await fetch("/healthz", { signal, credentials: "same-origin" });
      return;
    } catch (e) {
      if (e.name === "AbortError") throw e;
    }
  }
}

// Whether asking again could succeed: not when the request itself was refused (a bad query, a missing
// scope), only when the network, the rate limit or the server stood in the way.
export function retryable(error) {
  return error.status === 0 || error.status === 429 || error.status >= 500;
}

// The errors of a query the server could not run or read (POST /query, a search's q and range, a rule's backtest).
const QUOTES_THE_QUERY = new Set(["invalid_query", "query_failed", "rule_failed"]);

// An API error shown where its content would have been: the message, each detail, what to do (a page's
// own advice, or the scopes' for a 403), and a retry when one can help.
export function errorBox(error, retry, advice) {
  // A refused query's message quotes the query as written (DuckDB's "LINE 1: ..." over a caret, a search's term),
  // and says the forms a time takes: a time there is text, not the server's (rewritten, it quoted SQL that was
  // never sent, and the caret pointed beside the mistake).
  // It is shown verbatim, its lines kept (the caret under the word at fault).
  const quotes = QUOTES_THE_QUERY.has(error.code);
  const shown = quotes ? (text) => text : timesShown;
  const verbatim = quotes ? "verbatim" : null;
  const details = (error.details || []).map((d) => [d.field, d.reason || d.message].filter(Boolean).join(": "))
    .filter((text) => !error.message.includes(text)).map((text) => h("li", { class: verbatim, text: shown(text) }));
  // A server that did not answer: the box asks again by itself, and retries once it answers while still shown
  // (Explore did; the other pages stayed on the error after the server was back).
  const waiting = retry && error.code === "network" && !advice;
  const box = h("div", { class: "error-box", role: "alert" },
    h("strong", { text: error.status ? `Error ${error.status}` : "Error" }),
    h("p", { class: verbatim, text: shown(error.message) }),
    details.length ? h("ul", {}, details) : null,
    advice ? h("p", { text: advice })
      : waiting ? h("p", { class: "muted", text: "This page asks again every few seconds, and goes on once loglake answers." })
      : error.status === 403 ? h("p", { class: "muted", text: "Your key's scopes do not allow this; sign in with a key that has them." }) : null,
    retry && retryable(error) ? h("button", { type: "button", text: "Retry", onclick: retry }) : null);
  if (waiting) retryWhenAnswering(box, retry);
  return box;
}

async function retryWhenAnswering(box, retry) {
  await untilAnswering();
  if (box.isConnected) retry(); // (not when the page was left, or retried by hand, meanwhile)
}
