// My notes: newest first, a page at a time (the API's Link rel="next"), filtered by title over
// the pages loaded so far; create, delete with confirmation and undo.

import { formatDate, h, replaceChildren, toast } from "./dom.js";
import { call, describeError, languages, nextLink } from "./api.js";
import { apiForm, field } from "./forms.js";

const PAGE_SIZE = 20;

export function languageName(list, code) {
  const known = list.find((l) => l.code === code);
  return known ? `${known.name} (${code})` : code;
}

// Options for a note's language: every language the server translates from or into.
export function languageOptions(list, current) {
  const codes = new Map();
  for (const language of list) {
    codes.set(language.code, language.name);
    for (const target of language.targets) if (!codes.has(target)) codes.set(target, target);
  }
  if (current && !codes.has(current)) codes.set(current, current);
  return [...codes].sort((a, b) => a[1].localeCompare(b[1]))
    .map(([code, name]) => ({ value: code, label: name === code ? code : `${name} (${code})` }));
}

// Asks in a modal <dialog>; resolves true when the person confirms.
export function confirmDelete(note) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent =
    `“${note.title}” and its translations will be deleted. You can undo right after.`;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// Deletes after confirmation and offers Undo, which creates the note again from its fields
// (the API has no undelete: the copy gets a new id, and its translations are not restored).
export async function deleteWithUndo(note, { onDeleted, onRestored }) {
  if (!(await confirmDelete(note))) return false;
  try {
    await call("DELETE", `/notes/${note.id}/`);
  } catch (error) {
    toast(`Could not delete: ${describeError(error)}`);
    return false;
  }
  onDeleted();
  const kept = { title: note.title, original_text: note.original_text, original_language: note.original_language };
  toast(`Deleted “${note.title}”.`, {
    label: "Undo",
    run: async () => {
      try {
        const { data } = await call("POST", "/notes/", kept);
        toast(`Restored “${data.title}”.`);
        onRestored(data);
      } catch (error) {
        toast(`Could not restore: ${describeError(error)}`);
      }
    },
  });
  return true;
}

export async function notesView(main, { go }) {
  let notes = [];
  let next = `/notes/?limit=${PAGE_SIZE}`;
  let known = [];

  const heading = h("h1", { tabindex: "-1" }, "My notes");
  const list = h("ul", { class: "notes", "aria-label": "Notes" });
  const count = h("p", { class: "muted", role: "status" });
  const more = h("button", { type: "button", class: "secondary" }, "Load more");
  const filter = h("input", { id: "filter", type: "search", autocomplete: "off" });
  const status = h("p", { class: "form-error", role: "alert" });

  const createSlot = h("div");
  main.append(
    heading,
    h("section", { "aria-labelledby": "new-note" }, h("h2", { id: "new-note" }, "New note"), createSlot),
    h("section", { "aria-labelledby": "list-title" },
      h("h2", { id: "list-title" }, "Your notes"),
      h("div", { class: "field" },
        h("label", { for: "filter" }, "Filter by title"),
        h("p", { id: "filter-hint", class: "hint" }, "Searches the notes loaded so far."),
        filter),
      status, count, list, more),
  );
  filter.setAttribute("aria-describedby", "filter-hint");

  function render() {
    const needle = filter.value.trim().toLocaleLowerCase();
    const shown = needle ? notes.filter((n) => n.title.toLocaleLowerCase().includes(needle)) : notes;
    replaceChildren(list, shown.map(item));
    count.textContent = needle
      ? `${shown.length} of ${notes.length} loaded notes match.`
      : notes.length ? `${notes.length} note${notes.length === 1 ? "" : "s"}${next ? " loaded" : ""}.` : "No notes yet.";
    more.hidden = !next;
  }

  function item(note) {
    const remove = h("button", { type: "button", class: "link danger", "aria-label": `Delete “${note.title}”` }, "Delete");
    remove.addEventListener("click", () => deleteWithUndo(note, {
      onDeleted: () => {
        notes = notes.filter((n) => n.id !== note.id);
        render();
        heading.focus();
      },
      onRestored: (restored) => upsert(restored),
    }));
    return h("li", { class: "note", "data-note-id": note.id },
      h("a", { href: `#/notes/${note.id}`, class: "note-title" }, note.title),
      h("span", { class: "meta" },
        languageName(known, note.original_language),
        note.translated_language ? ` → ${languageName(known, note.translated_language)}` : "",
        " · ", h("time", { datetime: note.created_at }, formatDate(note.created_at))),
      remove);
  }

  function upsert(note) {
    const at = notes.findIndex((n) => n.id === note.id);
    if (at >= 0) notes[at] = note;
    else notes = [note, ...notes].sort((a, b) => b.id - a.id);
    render();
  }

  async function loadMore() {
    if (!next) return;
    more.disabled = true;
    try {
      const { data, response } = await call("GET", next);
      const seen = new Set(notes.map((n) => n.id));
      notes = notes.concat(data.filter((n) => !seen.has(n.id)));
      next = nextLink(response);
      status.replaceChildren();
      render();
    } catch (error) {
      status.textContent = `Could not load notes: ${describeError(error)}`;
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener("click", loadMore);
  filter.addEventListener("input", render);

  try {
    known = await languages();
  } catch {
    known = [];
  }
  const fields = [
    field({ name: "title", label: "Title", required: true }),
    field({ name: "original_text", label: "Text", kind: "textarea", required: true }),
    field({ name: "original_language", label: "Language", kind: "select", value: "en", options: languageOptions(known, "en") }),
  ];
  const form = apiForm({
    label: "New note",
    fields,
    submitLabel: "Create note",
    action: async (values) => {
      const { data } = await call("POST", "/notes/", values);
      upsert(data);
      fields[0].control.value = "";
      fields[1].control.value = "";
      toast(`Created “${data.title}”.`);
      go(`#/notes/${data.id}`);
    },
  });
  createSlot.append(form);
  await loadMore();

  return {
    onEvent(type, data) {
      if (type !== "note") return;
      if (data.action === "deleted") {
        notes = notes.filter((n) => n.id !== data.note.id);
        render();
      } else if (data.action === "created" || notes.some((n) => n.id === data.note.id)) {
        upsert(data.note);
      }
    },
    async onReset() {
      notes = [];
      next = `/notes/?limit=${PAGE_SIZE}`;
      await loadMore();
    },
  };
}
