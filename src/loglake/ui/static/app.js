// The shell of the UI: the session, the navigation, the theme, the keyboard, and a router that draws
// the page of /ui/<page>/<item> into <main> without reloading.
import { ApiError, api, errorBox, setCsrfToken, setRateLimit, signIn } from "./api.js";
import { h, keepFocus, link, replace, setTimeZone, timeZone, timeZoneName } from "./dom.js";
import * as alerts from "./alerts.js";
import * as amplify from "./amplify.js";
import * as ask from "./ask.js";
import * as explore from "./explore.js";
import * as rules from "./rules.js";
import * as sql from "./sql.js";
import * as status from "./status.js";

// name, title, the scope it needs, the module drawing it, whether it has pages of items (/ui/alerts/<id>)
const PAGES = [
  ["explore", "Explore", "read", explore, false],
  ["sql", "SQL", "read", sql, false],
  ["ask", "Ask", "read", ask, false],
  ["alerts", "Alerts", "read", alerts, true],
  ["rules", "Rules", "read", rules, true],
  ["amplify", "Amplify", "read", amplify, false],
  ["status", "Status", null, status, false],
];

const main = document.getElementById("main");
let session = null;
let leave = null; // what the current page does when it is left (close a live tail)

function allows(scope) {
  return !scope || session.scopes.includes(scope) || session.scopes.includes("admin");
}

function navigate(path, { replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  draw();
}

function draw() {
  if (leave) leave();
  leave = null;
  // (the control that changed the view, Explore's range and zone, Amplify's app and range, the alerts' filters, is
  // focused again in the view drawn, once it is there: a page may draw it with its answer)
  const focusBack = keepFocus(main, { wait: true });
  showTimeZone(); // (Explore's picker changes it too)
  const [name = "", item] = location.pathname.replace(/^\/ui\/?/, "").split("/").map(decodeURIComponent);
  const usable = PAGES.filter(([, , scope]) => allows(scope));
  if (!name) {
    // the home page is the first usable page; a shared link's query and hash are its view, so they go along
    navigate(`/ui/${usable[0][0]}${location.search}${location.hash}`, { replaceState: true });
    return;
  }
  const page = PAGES.find(([n, , , , items]) => n === name && (items || !item));
  for (const a of document.querySelectorAll("#nav a")) {
    if (page && a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!page) {
    drawNoSuchPage(usable);
    return;
  }
  const [, title, scope, module] = page;
  document.title = `${title} · loglake`;
  if (!allows(scope)) {
    replace(main, errorBox(new ApiError(403, "forbidden", `Your key ${session.key_name} does not have the ${scope} scope this page needs.`)));
    return;
  }
  replace(main);
  leave = module.render(main, { session, item, params: new URLSearchParams(location.search), allows, navigate }) || null;
  focusBack();
}

// A mistyped or outdated link: say so and offer the pages there are, rather than showing another page.
function drawNoSuchPage(usable) {
  document.title = "No such page · loglake";
  replace(main, h("h1", { text: "No such page" }),
    h("p", {}, "There is no page at ", h("code", { text: location.pathname }), ". The pages are:"),
    h("ul", { class: "page-list" }, usable.map(([name, title]) => h("li", {}, link(`/ui/${name}`, title)))));
}

function drawNav() {
  const nav = document.getElementById("nav");
  replace(nav, PAGES.filter(([, , scope]) => allows(scope)).map(([name, title]) =>
    h("a", { href: `/ui/${name}`, "data-route": "", "data-page": name, text: title })));
  document.getElementById("who").textContent = `${session.key_name} (${session.scopes.join(", ")})`;
}

// -- theme: the system's unless the person chose one --------------------------------------------

const THEMES = ["system", "light", "dark"];

function applyTheme(theme) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  document.getElementById("theme").textContent = `Theme: ${theme}`;
}

function setupTheme() {
  const button = document.getElementById("theme");
  applyTheme(localStorage.getItem("loglake-theme") || "system");
  button.addEventListener("click", () => {
    const current = localStorage.getItem("loglake-theme") || "system";
    const next = THEMES[(THEMES.indexOf(current) + 1) % THEMES.length];
    localStorage.setItem("loglake-theme", next);
    applyTheme(next);
  });
}

// -- times: every page in one zone, the browser's unless the person chose UTC -------------------------

function showTimeZone() {
  const button = document.getElementById("tz");
  const zone = timeZone();
  button.textContent = `Times: ${zone === "utc" ? "UTC" : "local"}`;
  button.title = zone === "utc" ? "Times are in UTC; click for your browser's time zone"
    : `Times are in your browser's time zone, ${timeZoneName()}; click for UTC`;
}

function setupTimeZone() {
  showTimeZone();
  document.getElementById("tz").addEventListener("click", () => {
    setTimeZone(timeZone() === "utc" ? "local" : "utc");
    // the page drawn again in the new zone; a link's own zone (Explore's tz=) gives way to the choice
    const params = new URLSearchParams(location.search);
    if (params.has("tz")) {
      params.delete("tz");
      history.replaceState(null, "", `${location.pathname}${params.size ? `?${params}` : ""}${location.hash}`);
    }
    if (session) draw();
    else showTimeZone();
  });
}

// -- keyboard: "/" to the query box, Escape closes what is open -----------------------------------

function setupKeyboard() {
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select, [contenteditable]");
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey) {
      const box = document.querySelector("[data-query-box]");
      if (box) {
        event.preventDefault();
        box.focus();
      }
    } else if (event.key === "Escape") {
      document.dispatchEvent(new CustomEvent("loglake:close"));
    }
  });
}

function setupLinks() {
  document.addEventListener("click", (event) => {
    const a = event.target.closest("a[data-route]");
    if (!a || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(a.getAttribute("href"));
    main.focus({ preventScroll: true });
  });
  window.addEventListener("popstate", draw);
}

// Only a server that ended the session signs the browser out: the cookie is HttpOnly, so the page cannot drop it.
// Sent to /login without that (the server down, a 5xx), the browser stayed signed in, and was let in again
// once the server was back, by a person who had seen it go to the sign-in page.
async function signOut() {
  let answer;
  try {
    answer = await api("/session", { method: "DELETE" });
  } catch (error) {
    if (leave) leave();
    leave = null;
    replace(main, h("h1", { text: "Not signed out" }), errorBox(error, signOut));
    return;
  }
  // On AWS the answer names Cognito's sign-out, which ends the hosted UI's session and comes back to /login.
  location.assign(answer?.sign_out_url || "/login");
}

async function start() {
  setupTheme();
  setupTimeZone();
  try {
    session = await api("/session");
  } catch (error) {
    if (error.status === 401) signIn();
    else replace(main, errorBox(error, () => location.reload()));
    return;
  }
  setCsrfToken(session.csrf_token);
  setRateLimit(session.rate_limit, session.rate_burst);
  document.getElementById("signout").addEventListener("click", signOut);
  setupKeyboard();
  setupLinks();
  drawNav();
  draw();
}

start();
