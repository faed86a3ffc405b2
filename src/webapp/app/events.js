// The user's event stream (GET /api/v1/events/) read with fetch, because EventSource cannot send
// an Authorization header and a token in the URL would land in logs. Parses Server-Sent Events,
// resumes with Last-Event-ID after a drop, backs off while the server is away, and gives up a
// silent stream (the server comments every 15 s) so a dead connection is noticed.

import { currentAccessToken, refreshAccess } from "./api.js";

const SILENCE_LIMIT_MS = 45000;
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 15000;

// Feeds text chunks, calls onEvent({id, type, data}) for each complete event (the SSE
// specification's parsing: CR, LF or CRLF line ends, "field: value", comments ignored).
export function sseParser(onEvent) {
  let buffer = "";
  let type = "";
  let data = [];
  let lastId = null;
  let sawCR = false;

  function line(text) {
    if (text === "") {
      if (data.length) onEvent({ id: lastId, type: type || "message", data: data.join("\n") });
      type = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) lastId = value;
  }

  return (chunk) => {
    for (const ch of chunk) {
      if (sawCR) {
        sawCR = false;
        if (ch === "\n") continue;  // the LF of a CRLF
      }
      if (ch === "\r" || ch === "\n") {
        sawCR = ch === "\r";
        line(buffer);
        buffer = "";
      } else {
        buffer += ch;
      }
    }
  };
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

// Starts reading; returns stop(). onState("connecting" | "open" | "waiting"), onEvent(type, data,
// id); onReset() when the server no longer holds what was missed (reload the view's data).
export function connectEvents({ onEvent, onState, onReset }) {
  const stopper = new AbortController();
  let wake = new AbortController();
  let lastEventId = null;
  let backoff = FIRST_BACKOFF_MS;
  let openedBefore = false;

  let connection = null;
  const retryNow = () => wake.abort();
  // A dropped network often leaves the socket silent rather than closed: when the browser knows
  // it is offline, give the stream up at once and resume (Last-Event-ID) when it is back.
  const dropNow = () => connection && connection.abort();
  window.addEventListener("online", retryNow);
  window.addEventListener("offline", dropNow);

  async function readOnce() {
    if (!currentAccessToken() && !(await refreshAccess())) throw new Error("logged out");
    const mine = new AbortController();
    connection = mine;
    const stop = () => mine.abort();
    stopper.signal.addEventListener("abort", stop, { once: true });
    let silence = 0;
    const armSilence = () => {
      clearTimeout(silence);
      silence = setTimeout(stop, SILENCE_LIMIT_MS);
    };
    try {
      const headers = { Accept: "text/event-stream", Authorization: `Bearer ${currentAccessToken()}` };
      if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
      armSilence();
      const response = await fetch("/api/v1/events/", {
        headers,
        cache: "no-store",
        credentials: "omit",
        signal: mine.signal,
      });
      if (response.status === 401) {
        // An expired access token: a fresh one and straight back, without waiting.
        if (await refreshAccess()) return "again";
        throw new Error("logged out");
      }
      if (!response.ok || !response.body) throw new Error(`events: ${response.status}`);
      onState("open");
      backoff = FIRST_BACKOFF_MS;
      if (openedBefore && lastEventId === null) onReset();  // nothing to resume from
      openedBefore = true;
      const parse = sseParser((event) => {
        if (event.id !== null) lastEventId = event.id;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        if (event.type === "reset") onReset();
        else onEvent(event.type, data, event.id);
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        armSilence();
        parse(value);
      }
      return "ended";
    } finally {
      clearTimeout(silence);
      stopper.signal.removeEventListener("abort", stop);
    }
  }

  (async () => {
    while (!stopper.signal.aborted) {
      onState("connecting");
      let outcome;
      try {
        outcome = await readOnce();
      } catch (error) {
        if (error.message === "logged out") break;
        outcome = "failed";
      }
      if (stopper.signal.aborted) break;
      if (outcome === "again") continue;
      onState("waiting");
      wake = new AbortController();
      // Jitter keeps many tabs from returning in step after a server restart.
      await sleep(backoff * (0.75 + Math.random() / 2), wake.signal);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  })();

  return () => {
    window.removeEventListener("online", retryNow);
    window.removeEventListener("offline", dropNow);
    stopper.abort();
    wake.abort();
  };
}
