// The live tail: records matching the query as the server commits them (server-sent events from
// /logs/tail), newest first. Pausing keeps what arrived; the server says when it dropped records for
// a slow page. Returns the function that closes the stream when the page is left.
import { url } from "./api.js";
import { counted, h, replace } from "./dom.js";
import { recordRow } from "./explore.js";

const KEPT = 2000; // records the page keeps; older ones leave the list

export function startTail(box, state, go) {
  const list = h("ol", { class: "records", "aria-label": "Live records, newest first", "aria-live": "off" });
  const rate = h("span", { class: "rate", text: "0 records/s" });
  const note = h("span", { class: "muted", role: "status", text: "Connecting…" });
  let paused = false, arrivals = [], held = [];
  const pause = h("button", { type: "button", class: "toggle", "aria-pressed": "false", text: "Pause", onclick: () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) { held.forEach(show); held = []; }
  } });
  const follow = h("input", { type: "checkbox", id: "autoscroll", checked: true });
  replace(box, h("div", { class: "tail-bar" }, pause, h("label", { for: "autoscroll" }, follow, " Keep the newest in view"), rate, note), list);

  function show(record) {
    list.prepend(recordRow(record, state, go));
    while (list.children.length > KEPT) list.lastChild.remove();
    if (follow.checked) list.firstChild.scrollIntoView({ block: "nearest" });
  }
  const source = new EventSource(url("/logs/tail", { q: state.q }));
  source.addEventListener("open", () => { note.textContent = "Live"; });
  source.addEventListener("record", (event) => {
    const record = JSON.parse(event.data);
    arrivals.push(Date.now());
    if (paused) held.push(record);
    else show(record);
  });
  source.addEventListener("dropped", (event) => {
    const { count } = JSON.parse(event.data);
    note.textContent = `The server dropped ${counted(count, "record")} this page could not take in time.`;
  });
  source.addEventListener("end", (event) => {
    source.close();
    note.textContent = `The live tail ended: ${JSON.parse(event.data).reason}. Reload to start it again.`;
  });
  // The server's own `error` events carry a message; the browser's (a lost connection) carry none.
  source.addEventListener("error", (event) => {
    if (event.data) note.textContent = `The live tail failed: ${JSON.parse(event.data).message}`;
    else note.textContent = source.readyState === EventSource.CLOSED
      ? "The live tail stopped; check the query, or reload to reconnect." : "Reconnecting…";
  });
  const timer = setInterval(() => {
    const now = Date.now();
    arrivals = arrivals.filter((t) => now - t < 5000);
    rate.textContent = `${(arrivals.length / 5).toFixed(1)} records/s`;
  }, 1000);
  return () => { source.close(); clearInterval(timer); };
}
