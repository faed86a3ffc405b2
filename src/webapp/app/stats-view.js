// Totals and the notes per language, as a bar chart drawn with SVG DOM calls (no chart library,
// no markup strings), with the same figures in a table for screen readers and copy-paste.

import { h, svg } from "./dom.js";
import { call, describeError, languages } from "./api.js";
import { languageName } from "./notes-view.js";

const BAR_HEIGHT = 28;
const GAP = 10;
const LABEL_WIDTH = 130;
const CHART_WIDTH = 360;

export function barChart(rows, { id, title, description }) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  const height = rows.length * (BAR_HEIGHT + GAP) + GAP;
  const room = CHART_WIDTH - LABEL_WIDTH - 50;
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_WIDTH} ${height}`, role: "img", "aria-labelledby": `${id}-title ${id}-desc`, id,
    class: "chart", preserveAspectRatio: "xMinYMin meet",
  },
  svg("title", { id: `${id}-title` }, title),
  svg("desc", { id: `${id}-desc` }, description));
  rows.forEach((row, i) => {
    const y = GAP + i * (BAR_HEIGHT + GAP);
    const width = Math.max(2, Math.round((row.value / max) * room));
    chart.append(
      svg("text", { x: LABEL_WIDTH - 8, y: y + BAR_HEIGHT / 2, "text-anchor": "end", "dominant-baseline": "central", class: "chart-label" }, row.label),
      svg("rect", { x: LABEL_WIDTH, y, width, height: BAR_HEIGHT, rx: 3, class: "chart-bar", "data-value": row.value }),
      svg("text", { x: LABEL_WIDTH + width + 6, y: y + BAR_HEIGHT / 2, "dominant-baseline": "central", class: "chart-value" }, String(row.value)));
  });
  return chart;
}

export async function statsView(main, { rerender }) {
  main.append(h("h1", { tabindex: "-1" }, "Stats"));
  let stats;
  let known = [];
  try {
    [{ data: stats }, known] = await Promise.all([call("GET", "/stats/"), languages().catch(() => [])]);
  } catch (error) {
    main.append(h("p", { class: "form-error", role: "alert" }, `Could not load the stats: ${describeError(error)}`));
    return null;
  }
  const rows = stats.language_breakdown
    .map((r) => ({ label: languageName(known, r.original_language), value: r.count }))
    .sort((a, b) => b.value - a.value || a.label.localeCompare(b.label));
  main.append(
    h("dl", { class: "totals" },
      h("div", {}, h("dt", {}, "Notes"), h("dd", { id: "total-notes" }, String(stats.total_notes))),
      h("div", {}, h("dt", {}, "Translations"), h("dd", { id: "total-translations" }, String(stats.total_translations)))),
    h("section", { "aria-labelledby": "counts-title" },
      h("h2", { id: "counts-title" }, "Notes and translations"),
      h("figure", {}, barChart([
        { label: "Notes", value: stats.total_notes },
        { label: "Translations", value: stats.total_translations },
      ], {
        id: "counts-chart",
        title: "Notes and translations",
        description: `${stats.total_notes} notes, ${stats.total_translations} translations`,
      }))),
    h("section", { "aria-labelledby": "breakdown-title" },
      h("h2", { id: "breakdown-title" }, "Notes by language"),
      rows.length
        ? [
          h("figure", {}, barChart(rows, {
            id: "language-chart",
            title: "Notes by language",
            description: rows.map((r) => `${r.label}: ${r.value}`).join(", "),
          })),
          h("table", {},
            h("caption", { class: "visually-hidden" }, "Notes by language"),
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Language"), h("th", { scope: "col" }, "Notes"))),
            h("tbody", {}, rows.map((r) => h("tr", {}, h("th", { scope: "row" }, r.label), h("td", {}, String(r.value)))))),
        ]
        : h("p", { class: "muted" }, "No notes yet.")),
  );
  // Counts move when notes come and go or a translation lands: draw again from fresh figures.
  return {
    onEvent(type, data) {
      if (type === "note" || (type === "job" && data.status === "succeeded")) rerender();
    },
    onReset: rerender,
  };
}
