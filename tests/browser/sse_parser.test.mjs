// The app's Server-Sent Events parser (src/webapp/app/events.js) on the byte shapes a stream can
// arrive in: any chunking, CRLF/CR/LF line ends, comments, multi-line data, ids kept across events.
// Usage: node --test sse_parser.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { sseParser } from "../../src/webapp/app/events.js";

function parseAll(chunks) {
  const events = [];
  const feed = sseParser((event) => events.push(event));
  for (const chunk of chunks) feed(chunk);
  return events;
}

const STREAM = ': keep-alive\n\nid: 7\nevent: job\ndata: {"id":1,"status":"queued"}\n\n' +
  'id: 8\nevent: note\ndata: {"action":"deleted",\ndata: "note":{"id":3}}\n\n';

test("events, ids and multi-line data, whatever the chunking", () => {
  const expected = [
    { id: "7", type: "job", data: '{"id":1,"status":"queued"}' },
    { id: "8", type: "note", data: '{"action":"deleted",\n"note":{"id":3}}' },
  ];
  assert.deepEqual(parseAll([STREAM]), expected);
  assert.deepEqual(parseAll([...STREAM]), expected);  // one character at a time
  for (let cut = 1; cut < STREAM.length; cut += 7) {
    assert.deepEqual(parseAll([STREAM.slice(0, cut), STREAM.slice(cut)]), expected, `cut at ${cut}`);
  }
});

test("CRLF and CR line ends, CRLF split across chunks", () => {
  const crlf = STREAM.replaceAll("\n", "\r\n");
  const expected = parseAll([STREAM]);
  assert.deepEqual(parseAll([crlf]), expected);
  assert.deepEqual(parseAll([...crlf]), expected);
  assert.deepEqual(parseAll([STREAM.replaceAll("\n", "\r")]), expected);
});

test("an event without data is not dispatched; the id persists; no space after the colon", () => {
  const events = parseAll(["id: 4\nevent: job\n\nevent:reset\ndata:{}\n\n"]);
  assert.deepEqual(events, [{ id: "4", type: "reset", data: "{}" }]);
});

test("an unfinished event waits for its blank line", () => {
  assert.deepEqual(parseAll(["id: 1\nevent: job\ndata: {}\n"]), []);
});
