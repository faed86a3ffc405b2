// The app's shell: hash routes, the session, the live event stream, online/offline.

import { h } from "./dom.js";
import { isLoggedIn, logOut, onSessionChange, refreshAccess, username } from "./api.js";
import { connectEvents } from "./events.js";
import { loginView, signupView } from "./auth-view.js";
import { notesView } from "./notes-view.js";
import { noteView } from "./note-view.js";
import { statsView } from "./stats-view.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const live = document.getElementById("live");
const offline = document.getElementById("offline");

let current = null;  // the shown view's handlers: onEvent(type, data), onReset()
let heldEvents = null;  // events that arrived while the view was still loading
let renderCount = 0;
let stopEvents = null;
let rerenderTimer = 0;

const go = (hash) => {
  if (location.hash === hash) render();
  else location.hash = hash;
};

function route() {
  const hash = location.hash || "";
  let match;
  if (hash === "#/signup") return { name: "signup", view: signupView, open: true, title: "Sign up" };
  if (hash === "#/login") return { name: "login", view: loginView, open: true, title: "Log in" };
  if (hash === "#/stats") return { name: "stats", view: statsView, title: "Stats" };
  if ((match = /^#\/notes\/(\d+)$/.exec(hash))) return { name: "note", view: noteView, id: Number(match[1]), title: "Note" };
  if (hash === "#/notes") return { name: "notes", view: notesView, title: "My notes" };
  return null;
}

async function render() {
  const target = route();
  if (!target) return go(isLoggedIn() ? "#/notes" : "#/login");
  if (!target.open && !isLoggedIn()) return go("#/login");
  if (target.open && isLoggedIn()) return go("#/notes");
  const count = ++renderCount;
  document.title = `${target.title} · transnotes`;
  for (const link of nav.querySelectorAll("a[data-route]")) {
    if (link.dataset.route === target.name || (target.name === "note" && link.dataset.route === "notes")) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
  const view = h("div", { class: `view view-${target.name}`, "aria-busy": "true" });
  main.replaceChildren(view);
  current = null;
  heldEvents = [];
  const handlers = await target.view(view, { go, id: target.id, rerender: scheduleRerender });
  if (count !== renderCount) return;  // a newer route replaced this one while it loaded
  current = handlers || null;
  // What happened while it loaded may or may not be in what it loaded: the views apply events
  // idempotently (by id), so replaying them all is safe.
  const held = heldEvents;
  heldEvents = null;
  for (const [type, data] of held) deliver(type, data);
  view.removeAttribute("aria-busy");
  // A new page: focus its heading, so keyboard and screen reader users start at the top of it.
  const heading = view.querySelector("h1");
  if (heading) heading.focus();
}

function deliver(type, data) {
  if (heldEvents) heldEvents.push([type, data]);
  else if (current && current.onEvent) current.onEvent(type, data);
}

function scheduleRerender() {
  clearTimeout(rerenderTimer);
  rerenderTimer = setTimeout(render, 300);
}

function showLive(state) {
  live.hidden = !isLoggedIn();
  live.dataset.state = state;
  live.textContent = { open: "Live", connecting: "Connecting…", waiting: "Reconnecting…" }[state] || state;
}

function sessionStarted() {
  nav.hidden = false;
  document.getElementById("who").textContent = username();
  if (!stopEvents) {
    stopEvents = connectEvents({
      onEvent: deliver,
      onState: showLive,
      onReset: () => (current && current.onReset ? current.onReset() : scheduleRerender()),
    });
  }
}

function sessionEnded() {
  nav.hidden = true;
  live.hidden = true;
  if (stopEvents) stopEvents();
  stopEvents = null;
}

onSessionChange((loggedIn) => {
  if (loggedIn) {
    sessionStarted();
  } else {
    sessionEnded();
    go("#/login");
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  await logOut();
  sessionEnded();
  go("#/login");
});

function showConnectivity() {
  offline.hidden = navigator.onLine;
}
window.addEventListener("offline", showConnectivity);
window.addEventListener("online", () => {
  showConnectivity();
  if (isLoggedIn()) scheduleRerender();  // what changed meanwhile; the stream resumes by itself
});
window.addEventListener("hashchange", render);
// The skip link moves focus without touching the hash, which is the router's.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") || main).focus();
});

(async () => {
  showConnectivity();
  if (isLoggedIn()) {
    // A reload in the same tab: the refresh token (sessionStorage) buys a new access token.
    await refreshAccess().catch(() => {});
    if (isLoggedIn()) sessionStarted();
  }
  render();
})();
