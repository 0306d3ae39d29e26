// Ask: a question in plain language becomes checked SQL (POST /ask), shown with its explanation, the
// tables and time range it reads, the estimated scan and the warnings before anything runs. "Run" runs
// exactly the SQL shown, through POST /query (asking again with run: true would put the question to the
// model once more, in a conversation that has moved on, and could run other SQL than the one read);
// "Open in SQL" takes it to the SQL page; "Make this a rule" drafts a detection rule from the
// conversation's last answer, written into the rules folder only when confirmed (admin scope). The
// conversation (its id and turns) is kept in this tab, so follow-ups continue it and it survives leaving
// the page; "New conversation" starts afresh.
import { api, errorBox, url } from "./api.js";
import { copyButton, counted, formatBytes, formatTime, h, keepFocus, link, replace, timeZone, timeZoneName, warningsList } from "./dom.js";
import { highlighted, query, resultView } from "./sql.js";

const KEPT = "loglake-ask"; // sessionStorage: { key, id, turns: [{ question, answer }], draft }
const FIRST_QUESTION = "e.g. how many errors did each service log in the last 24 hours?  (Enter asks, Shift+Enter: a new line)";
const FOLLOW_UP = "A follow-up, e.g. only for the api service  (or start a new conversation)";

// Whether a question is on its way (one at a time, whichever visit of the page asked it). Leaving the page does not
// give it up, as it does a run: its answer is the conversation's next turn, which the server keeps and the model was
// paid for. It is added to the tab's conversation when it comes, and drawn by the Ask page shown then.
let asking = false;
// The Ask page shown ({ busy, answered }), told of its question's progress and outcome; null once left.
let shown = null;

export function render(main, { session, allows }) {
  const ask = session.ask || { configured: false, how: "" };
  if (!ask.configured) {
    replace(main, h("h1", { text: "Ask" }), h("div", { class: "empty" }, h("p", {}, withCode(sentence(ask.how)))));
    return null;
  }
  const key = session.key_name;
  const left = new AbortController(); // the page is left: its runs and drafts are given up (see turnView)
  const turns = h("ol", { class: "turns", "aria-label": "Conversation" });
  const status = h("div", { class: "ask-status", "aria-live": "polite" });
  const question = h("textarea", { id: "question", name: "question", rows: 3, "data-query-box": "", maxlength: 2000 });
  // the question being written, kept with the conversation: a look at another page loses none of it
  question.value = conversation(key).draft || "";
  question.addEventListener("input", () => update(key, (kept) => { kept.draft = question.value; }));
  const askButton = h("button", { type: "submit", class: "primary", text: "Ask" });
  const restart = h("button", { type: "button", text: "New conversation", onclick: () => {
    update(key, (kept) => { kept.id = null; kept.turns = []; });
    draw();
    replace(status);
    question.focus();
  } });
  // (the conversation as kept, read each time: an answer that came while another page was shown is in it)
  const draw = () => {
    const kept = conversation(key);
    const lastWithSql = kept.turns.findLastIndex((turn) => turn.answer.sql);
    replace(turns, kept.turns.map((turn, i) => turnView(turn, i === lastWithSql ? kept.id : null, allows, left.signal)));
    restart.hidden = !kept.turns.length;
    question.placeholder = kept.turns.length ? FOLLOW_UP : FIRST_QUESTION;
  };
  const page = {
    // (a new conversation started meanwhile would get the answer of the one it ended)
    busy: (on) => {
      askButton.disabled = restart.disabled = on;
      replace(status, on ? h("p", { class: "progress", text: `Asking ${ask.model}…` }) : null);
    },
    answered: (text, error) => {
      if (error) {
        replace(status, askError(error, submit));
        return;
      }
      draw();
      if (question.value.trim() === text) question.value = ""; // (asked: no longer a draft, unless typed over since)
      turns.lastElementChild?.scrollIntoView({ block: "nearest" });
    },
  };
  const submit = () => {
    const text = question.value.trim();
    if (asking) return; // one question at a time
    if (!text) { question.focus(); return; }
    put(key, text);
  };
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); }
  });
  replace(main, h("div", { class: "ask-page" },
    h("h1", { text: "Ask" }),
    h("p", { class: "muted small", text: `Questions become SQL over the lake, answered by ${ask.model} (${ask.provider}). Nothing runs until you press Run.` }),
    turns,
    h("form", { class: "ask-form", onsubmit: (e) => { e.preventDefault(); submit(); } },
      h("label", { for: "question", text: "Question" }),
      question,
      h("div", { class: "toolbar" }, askButton, restart)),
    status));
  draw();
  shown = page;
  page.busy(asking);
  return () => {
    if (shown === page) shown = null;
    left.abort();
  };
}

// Puts the question to the model in the tab's conversation, and adds its answer there: to the conversation as kept
// when it comes (a page left meanwhile held the conversation as it was, and a draft typed since on the page opened
// again was replaced by the answer's empty one); the draft goes only if it is still the question.
async function put(key, text) {
  asking = true;
  shown?.busy(true);
  let failed = null;
  try {
    const answer = await api("/ask", { method: "POST", body: { question: text, conversation_id: conversation(key).id, time_zone: timeZoneName() } });
    update(key, (kept) => {
      kept.id = answer.conversation_id;
      kept.turns.push({ question: text, answer });
      if ((kept.draft || "").trim() === text) kept.draft = "";
    });
  } catch (error) {
    failed = error;
  } finally {
    asking = false;
  }
  shown?.busy(false);
  shown?.answered(text, failed);
}

// The tab's conversation, unless another key signed in since.
function conversation(key) {
  try {
    const kept = JSON.parse(sessionStorage.getItem(KEPT) || "null");
    if (kept && kept.key === key) return kept;
  } catch {
    // unreadable: start afresh
  }
  return { key, id: null, turns: [] };
}

// The tab's conversation changed by `change` (given it as kept now).
function update(key, change) {
  const kept = conversation(key);
  change(kept);
  sessionStorage.setItem(KEPT, JSON.stringify(kept));
}

function sentence(text) {
  return text ? `${text[0].toUpperCase()}${text.slice(1)}.` : "";
}

// The server's text marks commands `so` (as a terminal shows them): here they are code.
function withCode(text) {
  return text.split("`").map((part, i) => i % 2 ? h("code", { text: part }) : part);
}

// What the person can do about each failure of a question.
function askError(error, retry) {
  const wait = error.retryAfter ? ` in ${duration(error.retryAfter)}` : "";
  const advice = {
    model_unavailable: `The model did not answer in time or is overloaded: ask again${wait || " in a few seconds"}.`,
    model_error: "The model answered with an error: ask again, and if it persists see the server's log and the model's.",
    model_answer_refused: "Rephrase the question: name the table, the columns or the time range you mean.",
    token_budget_spent: `No more questions for now: the model's daily token budget (llm_daily_tokens) renews${wait}.`,
    rate_limited: `Too many questions in a minute: ask again${wait || " shortly"}.`,
    not_found: "This conversation has expired: start a new conversation (the button below the question).",
  }[error.code];
  const again = error.code !== "token_budget_spent"; // a retry would only fail the same way until it renews
  return errorBox(error, again ? retry : null, advice);
}

function duration(seconds) {
  if (seconds < 120) return counted(seconds, "second");
  if (seconds < 7200) return counted(Math.round(seconds / 60), "minute");
  return counted(Math.round(seconds / 3600), "hour");
}

// One question and its answer; `ruleFrom` is the conversation's id on the last answer with SQL (the
// one a rule is drafted from), else null. `left`: aborted once the page is left, which stops a run of the SQL on
// the server (a query over the lake, which ran on to its end for a page no longer shown) and a rule's drafting.
function turnView({ question, answer }, ruleFrom, allows, left) {
  const body = [h("p", { class: "question" }, h("span", { class: "muted", text: "You asked: " }), question),
    h("p", { class: "explanation", text: answer.explanation || "" })];
  if (!answer.sql) return h("li", { class: "turn" }, body, h("p", { class: "muted small", text: "No SQL: the model found no way to answer this from loglake's tables. Rephrase it, or ask about another table." }));
  const output = h("div", { class: "run-output", "aria-live": "polite" });
  const rule = h("div", { class: "rule-output", "aria-live": "polite" });
  return h("li", { class: "turn" }, body,
    h("pre", { class: "sql-code" }, h("code", {}, highlighted(answer.sql))),
    scanFacts(answer),
    warningsList(answer.warnings),
    answer.changes.length ? h("div", { class: "muted small" }, h("span", { text: "loglake changed the model's SQL: " }), answer.changes.join("; ")) : null,
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "primary", text: "Run", onclick: () => run(answer.sql, output, left) }),
      link(url("/ui/sql", { sql: answer.sql }), "Open in SQL"),
      copyButton(answer.sql, "Copy SQL"),
      ruleFrom ? h("button", { type: "button", text: "Make this a rule", onclick: (e) => draftRule(ruleFrom, rule, allows, left, e.currentTarget) }) : null,
      h("span", { class: "muted small", text: answer.cached ? "a cached answer" : counted(answer.attempts, "attempt") })),
    output, rule);
}

function scanFacts(answer) {
  const e = answer.estimate;
  const span = answer.time_range || {};
  const when = (iso, open) => iso ? formatTime(Date.parse(iso)) : open;
  // The range the query's time predicates name; the lake data it would read is the estimate's own span.
  const relative = span.relative_to_now ? " (relative to now(): the range moves with each run)" : "";
  // ("local" only when it is: with UTC chosen it read "… 23:00:00.000 UTC → now local")
  const zone = timeZone() === "utc" ? "" : " local";
  const range = span.since || span.until ? `${when(span.since, "the first record")} → ${when(span.until, "now")}${zone}${relative}` : "all time (the query names no time)";
  const lake = e && e.total_files !== null
    ? `${counted(e.files, "lake file")} of ${e.total_files.toLocaleString()}, ${formatBytes(e.bytes)} of ${formatBytes(e.total_bytes)}`
    : e ? `${counted(e.files, "lake file")}, ${formatBytes(e.bytes)}` : "";
  const detail = e && e.data_since ? ` (${counted(e.row_groups, "row group")}, at most ${counted(e.rows, "row")}, records from ${when(e.data_since)} → ${when(e.data_until)})` : "";
  const hot = e && e.hot_records ? `; and ${counted(e.hot_records, "record")} not yet in the lake (the hot store, not in the bytes)` : "";
  return h("dl", { class: "facts" },
    h("dt", { text: "Reads" }), h("dd", { text: answer.tables.length ? answer.tables.join(", ") : "no table" }),
    h("dt", { text: "Time range" }), h("dd", { text: range }),
    h("dt", { text: "Would scan" }), h("dd", { text: e ? lake + detail + hot : "–" }));
}

async function run(sql, output, left) {
  replace(output, h("p", { class: "progress", text: "Running…" }));
  try {
    replace(output, resultView(await query({ sql }, left)));
  } catch (error) {
    if (error.name !== "AbortError") replace(output, errorBox(error, () => run(sql, output, left)));
  }
}

// `opener`: the button that asked for it, where the focus goes back when the draft is discarded.
async function draftRule(conversationId, box, allows, left, opener) {
  const path = `/ask/${encodeURIComponent(conversationId)}/rule`;
  replace(box, h("p", { class: "progress", text: "Drafting a rule…" }));
  let draft;
  try {
    draft = await api(path, { method: "POST", signal: left });
  } catch (error) {
    if (error.name !== "AbortError") replace(box, errorBox(error, () => draftRule(conversationId, box, allows, left, opener)));
    return;
  }
  const outcome = h("div", { "aria-live": "polite" });
  // (the focus in the draft, Escape's or Discard's, goes back to the button that asked for it: it fell to the page's body)
  const discard = () => {
    document.removeEventListener("loglake:close", discard);
    const focusBack = keepFocus(box, { fallback: opener });
    replace(box);
    focusBack();
  };
  document.addEventListener("loglake:close", discard); // Escape discards the draft, as its button does
  const write = async () => {
    replace(outcome, h("p", { class: "progress", text: `Writing ${draft.file}…` }));
    try {
      const written = await api(path, { method: "POST", body: { confirm: true } });
      document.removeEventListener("loglake:close", discard);
      const focusBack = keepFocus(box); // (on to the link to the rules: the Write button is gone)
      replace(box, h("p", {}, `The rule is written to ${written.written}; the server runs it from its next scan of the rules folder. `,
        link("/ui/rules", "See the rules")));
      focusBack();
    } catch (error) {
      replace(outcome, errorBox(error, () => draftRule(conversationId, box, allows, left, opener)));
    }
  };
  replace(box, h("h2", { text: `Drafted rule ${draft.file}` }),
    h("pre", { class: "plan", tabindex: "0", role: "region", "aria-label": "The drafted rule", text: draft.yaml }),
    warningsList(draft.warnings),
    draft.valid ? null : h("div", { class: "error-box", role: "alert" },
      h("strong", { text: "This draft does not load as a rule, so it cannot be written:" }),
      h("ul", {}, draft.problems.map((p) => h("li", { text: p })))),
    h("div", { class: "toolbar" },
      draft.valid && allows("admin") ? h("button", { type: "button", class: "primary", text: `Write ${draft.file} to the rules folder`, onclick: write }) : null,
      copyButton(draft.yaml, "Copy YAML"),
      h("button", { type: "button", text: "Discard", onclick: discard })),
    draft.valid && !allows("admin")
      ? h("p", { class: "muted small", text: "Writing into the server's rules folder needs a key with the admin scope; copy the YAML into a file there instead." })
      : null,
    outcome);
}
