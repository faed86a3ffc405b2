// One note: read, edit, delete; translate it and watch the job live; every translation of it,
// the chosen one side by side with the original.

import { formatDate, h, replaceChildren, toast } from "./dom.js";
import { ApiError, call, describeError, languages } from "./api.js";
import { apiForm, field } from "./forms.js";
import { deleteWithUndo, languageName, languageOptions } from "./notes-view.js";

const STATUS_WORDS = {
  queued: "Waiting for a worker",
  running: "Translating…",
  succeeded: "Done",
  failed: "Failed",
  cancelled: "Cancelled by an administrator",
};

function pairLabel(known, pair) {
  const via = pair.pivot ? `, via ${languageName(known, pair.pivot)}` : "";
  return `${languageName(known, pair.target)} — ${pair.engine}${via}`;
}

export async function noteView(main, { go, id }) {
  let note;
  let known = [];
  try {
    [{ data: note }, known] = await Promise.all([call("GET", `/notes/${id}/`), languages().catch(() => [])]);
  } catch (error) {
    main.append(
      h("h1", { tabindex: "-1" }, error instanceof ApiError && error.status === 404 ? "Note not found" : "Could not load the note"),
      h("p", {}, describeError(error)),
      h("p", {}, h("a", { href: "#/notes" }, "Back to my notes")));
    return null;
  }
  const jobs = new Map();  // target language -> newest job
  // Each job as its latest event showed it. A response is a snapshot that may have been taken
  // before events the stream already delivered (a job can fail before POST's answer arrives),
  // so for a job the stream has spoken of, the stream wins.
  const streamed = new Map();
  const freshest = (job) => streamed.get(job.id) || job;
  let selected = note.translated_language;
  let gone = false;

  const heading = h("h1", { tabindex: "-1" });
  const meta = h("p", { class: "meta" });
  const editButton = h("button", { type: "button", class: "secondary", "aria-expanded": "false", "aria-controls": "edit-slot" }, "Edit");
  const deleteButton = h("button", { type: "button", class: "danger" }, "Delete");
  const editSlot = h("div", { id: "edit-slot", hidden: true });
  const original = h("div", { class: "text", lang: note.original_language });
  const originalTitle = h("h3", {});
  const translation = h("div", { class: "text", "aria-live": "polite", id: "translation-text" });
  const translationTitle = h("h3", {});
  const translateSlot = h("div");
  const jobList = h("ul", { class: "jobs", "aria-label": "Translations of this note" });
  const announce = h("p", { class: "visually-hidden", role: "status" });

  main.append(
    h("p", {}, h("a", { href: "#/notes" }, "← All notes")),
    heading, meta,
    h("div", { class: "actions" }, editButton, deleteButton),
    editSlot,
    h("section", { "aria-labelledby": "translate-title" }, h("h2", { id: "translate-title" }, "Translate"), translateSlot),
    h("section", { class: "side-by-side", "aria-label": "Original and translation" },
      h("div", { class: "pane" }, originalTitle, original),
      h("div", { class: "pane" }, translationTitle, translation)),
    h("section", { "aria-labelledby": "jobs-title" }, h("h2", { id: "jobs-title" }, "All translations"), jobList),
    announce,
  );

  function renderNote() {
    heading.textContent = note.title;
    document.title = `${note.title} · transnotes`;
    replaceChildren(meta, languageName(known, note.original_language), " · created ",
      h("time", { datetime: note.created_at }, formatDate(note.created_at)),
      note.updated_at !== note.created_at ? [" · edited ", h("time", { datetime: note.updated_at }, formatDate(note.updated_at))] : null);
    originalTitle.textContent = `Original · ${languageName(known, note.original_language)}`;
    original.textContent = note.original_text;
    original.lang = note.original_language;
  }

  function renderTranslation() {
    const job = selected ? jobs.get(selected) : null;
    translationTitle.textContent = selected ? `Translation · ${languageName(known, selected)}` : "Translation";
    translation.lang = selected || "";
    if (job && job.status === "succeeded") translation.textContent = job.text;
    else if (!job && selected === note.translated_language && note.translated_text !== null) translation.textContent = note.translated_text;
    else if (job) translation.textContent = `${STATUS_WORDS[job.status] || job.status}${job.status === "failed" && job.error ? `: ${job.error}` : ""}`;
    else translation.textContent = "Not translated yet.";
    translation.classList.toggle("muted", !(job && job.status === "succeeded") && !(selected && selected === note.translated_language && !job));
  }

  function renderJobs() {
    const items = [...jobs.values()].sort((a, b) => b.id - a.id).map((job) => {
      const buttons = [];
      if (job.status === "succeeded") {
        buttons.push(h("button", { type: "button", class: "secondary", "aria-pressed": String(selected === job.target_language),
          onclick: () => { selected = job.target_language; renderTranslation(); renderJobs(); } },
        selected === job.target_language ? "Shown beside the original" : "Show beside the original"));
      }
      if (job.status === "failed" || job.status === "cancelled") {
        buttons.push(h("button", { type: "button", onclick: () => translate(job.target_language) },
          `Retry ${languageName(known, job.target_language)}`));
      }
      return h("li", { class: `job status-${job.status}`, "data-job-id": job.id, "data-target": job.target_language },
        h("span", { class: "job-target" }, languageName(known, job.target_language)),
        h("span", { class: "badge" }, STATUS_WORDS[job.status] || job.status),
        h("span", { class: "meta" }, `${job.engine} · attempt ${job.attempts} of ${job.max_attempts}`),
        job.status === "failed" && job.error ? h("p", { class: "job-error" }, `Why: ${job.error}`) : null,
        job.status === "succeeded" ? h("p", { class: "job-text", lang: job.target_language }, job.text) : null,
        buttons.length ? h("div", { class: "actions" }, buttons) : null);
    });
    replaceChildren(jobList, items.length ? items : h("li", { class: "muted" }, "None yet."));
  }

  function takeJob(job) {
    job = freshest(job);
    const current = jobs.get(job.target_language);
    if (current && current.id > job.id) return;
    const changed = !current || current.status !== job.status;
    jobs.set(job.target_language, job);
    if (changed) announce.textContent = `${languageName(known, job.target_language)}: ${STATUS_WORDS[job.status] || job.status}`;
    renderJobs();
    renderTranslation();
  }

  async function translate(target) {
    try {
      const { data } = await call("POST", `/notes/${note.id}/translate/`, { target_language: target });
      selected = target;
      takeJob(data.translation);
    } catch (error) {
      toast(`Could not start the translation: ${describeError(error)}`);
    }
  }

  function renderTranslateForm() {
    const source = known.find((l) => l.code === note.original_language);
    const pairs = source ? source.pairs : [];
    if (!pairs.length) {
      replaceChildren(translateSlot, h("p", { class: "muted" },
        `No engine here translates from ${languageName(known, note.original_language)}.`));
      return;
    }
    const target = field({ name: "target_language", label: "Translate into", kind: "select",
      value: selected || pairs[0].target, options: pairs.map((p) => ({ value: p.target, label: pairLabel(known, p) })) });
    replaceChildren(translateSlot, apiForm({
      label: "Translate",
      fields: [target],
      submitLabel: "Translate",
      action: async ({ target_language }) => {
        const { data } = await call("POST", `/notes/${note.id}/translate/`, { target_language });
        selected = target_language;
        takeJob(data.translation);
      },
    }));
  }

  function renderEditForm() {
    const fields = [
      field({ name: "title", label: "Title", value: note.title, required: true }),
      field({ name: "original_text", label: "Text", kind: "textarea", value: note.original_text, required: true }),
      field({ name: "original_language", label: "Language", kind: "select", value: note.original_language,
        options: languageOptions(known, note.original_language) }),
    ];
    const cancel = h("button", { type: "button", class: "secondary", onclick: () => closeEdit() }, "Cancel");
    replaceChildren(editSlot, apiForm({
      label: "Edit note",
      fields,
      submitLabel: "Save",
      extra: [cancel],
      action: async (values) => {
        const { data } = await call("PATCH", `/notes/${note.id}/`, values);
        note = data;
        renderNote();
        renderTranslateForm();
        closeEdit();
        toast("Saved.");
      },
    }));
    fields[0].control.focus();
  }

  function closeEdit() {
    editSlot.hidden = true;
    editSlot.replaceChildren();
    editButton.setAttribute("aria-expanded", "false");
    editButton.focus();
  }

  editButton.addEventListener("click", () => {
    if (!editSlot.hidden) return closeEdit();
    editSlot.hidden = false;
    editButton.setAttribute("aria-expanded", "true");
    renderEditForm();
  });
  deleteButton.addEventListener("click", () => deleteWithUndo(note, {
    onDeleted: () => {
      gone = true;
      go("#/notes");
    },
    onRestored: (restored) => go(`#/notes/${restored.id}`),
  }));

  async function loadJobs() {
    try {
      const { data } = await call("GET", `/notes/${note.id}/translations/`);
      jobs.clear();
      for (const job of data) jobs.set(job.target_language, freshest(job));
      if (!selected && data.length) selected = data[0].target_language;
    } catch (error) {
      toast(`Could not load the translations: ${describeError(error)}`);
    }
    renderJobs();
    renderTranslation();
  }

  renderNote();
  renderTranslateForm();
  await loadJobs();

  return {
    onEvent(type, data) {
      if (gone) return;
      if (type === "job" && data.note_id === note.id) {
        streamed.set(data.id, data);
        takeJob(data);
      }
      if (type === "note" && data.note.id === note.id) {
        if (data.action === "deleted") {
          gone = true;
          replaceChildren(meta, "This note was deleted.");
          return;
        }
        note = data.note;
        renderNote();
        renderTranslation();
      }
    },
    async onReset() {
      if (gone) return;
      try {
        ({ data: note } = await call("GET", `/notes/${note.id}/`));
        renderNote();
      } catch {
        // a deleted note shows as it was; the list no longer has it
      }
      await loadJobs();
    },
  };
}
