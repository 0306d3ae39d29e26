// Status: health, ingest over the last hour, rejected records, storage by table and day, the hot store
// and how far the lake lags behind it, query load; for admins, the API keys (create with scopes and a
// rate limit, list, revoke).
import { api, errorBox, request } from "./api.js";
import { stackedBars } from "./chart.js";
import { copyButton, counted, formatBytes, formatCount, formatTime, h, replace, whileDisabled } from "./dom.js";

const SCOPES = ["ingest", "read", "alerts", "admin"];
// sessionStorage: the new key's form as filled and not yet sent, as the SQL page keeps its draft and an alert its
// note: a session that ended meanwhile sent the person to sign in from "Create key", and back here the name was gone.
const DRAFT_KEY = "loglake-key-draft";

export function render(main, { allows }) {
  const sections = {
    health: h("section", { "aria-label": "Health" }, h("p", { class: "progress", text: "Asking the server…" })),
    ingest: h("section", { "aria-label": "Ingest" }),
    storage: h("section", { "aria-label": "Storage" }),
    keys: allows("admin") ? h("section", { "aria-label": "API keys", class: "keys" }) : null,
  };
  replace(main, h("h1", { text: "Status" }), Object.values(sections));
  loadHealth(sections.health);
  if (allows("read")) {
    loadIngest(sections.ingest);
    loadStorage(sections.storage);
  }
  if (sections.keys) loadKeys(sections.keys);
  return null;
}

async function loadHealth(box) {
  // /healthz answers 503 with its body when storage cannot take writes: read that body too.
  try {
    const response = await fetch("/healthz", { credentials: "same-origin", headers: { accept: "application/json" } });
    const health = await response.json();
    const error = health.store?.error || health.reason;
    replace(box, h("div", { class: "cards" },
      card("Health", h("span", { class: health.status === "ok" ? "ok" : "error", text: health.status }), error ? h("p", { class: "error small", text: error }) : null),
      health.version ? card("Version", health.version) : null,
      health.lake ? card("Lake maintenance", health.lake.last_maintenance ? formatTime(Date.parse(health.lake.last_maintenance)) : "not yet",
        health.lake.error ? h("p", { class: "error small", text: health.lake.error }) : null) : null,
      health.rules ? card("Rules", `${health.rules.rules} loaded`,
        [...health.rules.problems, health.rules.error].filter(Boolean).map((p) => h("p", { class: "error small", text: p }))) : null));
  } catch {
    replace(box, errorBox({ status: 0, message: "loglake did not answer /healthz; check that the server is running, then retry" }, () => loadHealth(box)));
  }
}

// (the figure big; what follows it in the card's own size, where names broke anywhere: "response_too / _large")
function card(title, figure, ...rest) {
  return h("div", { class: "card" }, h("h2", { text: title }), h("div", { class: "big" }, figure), rest);
}

// Prometheus text as {name: [[labels, value], ...]}.
function parseMetrics(text) {
  const metrics = {};
  for (const line of text.split("\n")) {
    const found = /^([a-z_:]+)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!found) continue;
    const labels = Object.fromEntries([...(found[2] || "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    (metrics[found[1]] ||= []).push([labels, Number(found[3])]);
  }
  return metrics;
}

const total = (metrics, name) => (metrics[name] || []).reduce((sum, [, v]) => sum + v, 0);

async function loadIngest(box) {
  replace(box, h("h2", { text: "Ingest, last hour" }), h("p", { class: "progress", text: "Counting…" }));
  try {
    const now = Date.now();
    const [histogram, metricsText] = await Promise.all([
      api("/logs/histogram", { params: { since: now - 3600e3, until: now, buckets: 60 } }),
      request("/metrics", { accept: "text/plain" }).then((r) => r.text()),
    ]);
    const metrics = parseMetrics(metricsText);
    const width = histogram.bucket_seconds * 1000;
    const bars = histogram.buckets.map((b) => ({ start: Date.parse(b.start), width, parts: [["info", b.total]] }));
    const rejected = (metrics.loglake_records_rejected_total || []).filter(([, v]) => v > 0);
    // the gauge is per table: the logs' newest record tells how far the lake is behind the hot store
    const newestLogs = (metrics.loglake_lake_newest_record_timestamp_seconds || []).find(([labels]) => labels.table === "logs");
    const hot = total(metrics, "loglake_hot_records");
    const per = histogram.bucket_seconds >= 60 ? `${histogram.bucket_seconds / 60} min` : `${histogram.bucket_seconds} s`;
    replace(box, h("h2", { text: `Ingest, last hour (records per ${per}, by their time)` }),
      stackedBars(bars, { height: 90, from: now - 3600e3, to: now, tickFormat: (ms) => formatTime(ms).slice(11, 16) }),
      h("div", { class: "cards" },
        card("Records ingested", formatCount(total(metrics, "loglake_records_ingested_total")), h("p", { class: "muted small", text: "since the server started" })),
        card("Records rejected", formatCount(total(metrics, "loglake_records_rejected_total")),
          rejected.length ? h("ul", { class: "small" }, rejected.map(([labels, v]) => h("li", { text: `${labels.reason || Object.values(labels).join(" ")}: ${v}` }))) : null),
        card("Hot store", counted(hot, "record", "records", formatCount(hot)),
          h("p", { class: "muted small", text: newestLogs ? `newest log in the lake: ${formatTime(newestLogs[1] * 1000)}` : "no log flushed to the lake yet" })),
        card("Queries", formatCount(total(metrics, "loglake_queries_total")),
          h("ul", { class: "small" }, (metrics.loglake_queries_total || []).map(([labels, v]) => h("li", { text: `${labels.outcome}: ${v}` }))))));
  } catch (error) {
    replace(box, errorBox(error, () => loadIngest(box)));
  }
}

async function loadStorage(box) {
  replace(box, h("h2", { text: "Storage" }), h("p", { class: "progress", text: "Reading the catalog…" }));
  try {
    const { tables } = await api("/tables");
    const rows = tables.flatMap((table) => (table.partitions || []).map((p) => [table.name, p]));
    replace(box, h("h2", { text: "Storage by table and day (the lake)" }),
      rows.length ? h("div", { class: "table-wrap", tabindex: "0" }, h("table", { class: "list" },
        h("thead", {}, h("tr", {}, ["Table", "Day (UTC)", "Files", "Records", "Size"].map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, rows.map(([name, p]) => h("tr", {}, h("td", { text: name }), h("td", { text: p.date }),
          h("td", { class: "num", text: p.files }), h("td", { class: "num", text: p.records.toLocaleString() }), h("td", { class: "num", text: formatBytes(p.bytes) }))))))
        : h("p", { class: "muted", text: "Nothing is in the lake yet: records stay in the hot store until the next flush." }));
  } catch (error) {
    replace(box, errorBox(error, () => loadStorage(box)));
  }
}

async function loadKeys(box) {
  const list = h("div", {}, h("p", { class: "progress", text: "Loading keys…" }));
  const made = h("div", { role: "status" });
  // pattern, maxlength and the title that says them, as the server checks a name (the page's data-key-name)
  const draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null") || { name: "", scopes: ["read"], rate: "", burst: "" };
  const name = h("input", { type: "text", name: "name", required: true, ...JSON.parse(document.body.dataset.keyName), "aria-label": "New key's name", placeholder: "name, e.g. ci", value: draft.name });
  const scopes = SCOPES.map((scope) => h("label", {}, h("input", { type: "checkbox", name: "scope", value: scope, checked: draft.scopes.includes(scope) }), ` ${scope}`));
  // left empty, the server's rate and burst apply; a rate without a burst gets one second's worth
  const rate = h("input", { type: "number", name: "rate_limit", min: "0.001", step: "any", "aria-label": "New key's rate limit (requests per second)", placeholder: "requests/s", value: draft.rate });
  const burst = h("input", { type: "number", name: "rate_burst", min: "1", step: "1", "aria-label": "New key's burst (requests at once)", placeholder: "burst", value: draft.burst });
  const ticked = () => scopes.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
  // One key at a time: a second click while the first was on its way sent the name again, and its 409 ("an active key
  // named ... exists") replaced the first's secret, shown only once: lost, the key made but of no use.
  const create = h("button", { type: "submit", class: "primary", text: "Create key" });
  const form = h("form", { class: "toolbar", oninput: () => sessionStorage.setItem(DRAFT_KEY,
    JSON.stringify({ name: name.value, scopes: ticked(), rate: rate.value, burst: burst.value })), onsubmit: (e) => {
    e.preventDefault();
    whileDisabled(create, async () => { // (Enter in a field submits too)
      const chosen = ticked();
      if (!chosen.length) { // (the API's own words were for its JSON: "scopes: must be an array of length >= 1")
        replace(made, h("p", { class: "error", text: "Tick at least one scope for the new key." }));
        return;
      }
      const limits = { rate_limit: rate.value ? Number(rate.value) : undefined, rate_burst: burst.value ? Number(burst.value) : undefined };
      try {
        const key = await api("/admin/keys", { method: "POST", body: { name: name.value, scopes: chosen, ...limits } });
        replace(made, h("div", { class: "card" }, h("p", {}, h("strong", { text: `Key ${key.name} created.` }), " Copy its secret now: it is shown only once."),
          h("p", { class: "secret", text: key.secret }), copyButton(key.secret, "Copy the secret")));
        for (const input of [name, rate, burst]) input.value = "";
        sessionStorage.removeItem(DRAFT_KEY);
        drawKeys(list, made);
      } catch (error) {
        replace(made, errorBox(error));
      }
    });
  } }, name, h("span", { class: "chips", role: "group", "aria-label": "Scopes" }, scopes),
  h("span", { class: "chips", role: "group", "aria-label": "Rate limit" }, h("span", { class: "muted", text: "own rate limit:" }), rate, burst),
  create);
  // The browser refuses a value it checks (the name's pattern, a rate below its minimum) without a submit: the
  // last submit's message, about another value, no longer applies.
  form.addEventListener("invalid", () => replace(made), true);
  replace(box, h("h2", { text: "API keys" }), form, made, list);
  drawKeys(list, made);
}

async function drawKeys(box, made) {
  try {
    const { keys } = await api("/admin/keys");
    replace(box, h("div", { class: "table-wrap", tabindex: "0" }, h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Name", "Scopes", "Starts with", "Rate limit", "Action"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, keys.map((key) => h("tr", {}, h("td", { text: key.name }), h("td", { text: key.scopes.join(", ") }),
        h("td", { class: "mono", text: key.hint || "" }), h("td", { text: rateLimitOf(key) }), h("td", {}, revokeButton(key, box, made))))))));
  } catch (error) {
    replace(box, errorBox(error, () => drawKeys(box, made)));
  }
}

// As `loglake keys list` says it: the key's own rate and burst, else the server's.
function rateLimitOf(key) {
  const rate = key.rate_limit ? `${key.rate_limit}/s` : "server rate";
  return key.rate_burst ? `${rate}, burst ${key.rate_burst}` : "server default";
}

// Revoking asks once more: the first click arms the button, the second revokes (one revocation at a time).
function revokeButton(key, list, made) {
  const button = h("button", { type: "button", class: "small", text: "Revoke", "aria-label": `Revoke ${key.name}` });
  button.addEventListener("click", () => {
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      button.textContent = `Really revoke ${key.name}?`;
      button.setAttribute("aria-label", button.textContent);
      return;
    }
    whileDisabled(button, async () => {
      try {
        await api(`/admin/keys/${encodeURIComponent(key.name)}`, { method: "DELETE" });
        replace(made, h("p", { text: `Key ${key.name} revoked.` }));
        await drawKeys(list, made); // (the button stays disabled until the list is drawn without it)
      } catch (error) {
        replace(made, errorBox(error));
      }
    });
  });
  return button;
}
