"use strict";
// The decision report: reads the JSON block, draws the page; every text goes in with textContent.
(() => {
  const CHUNK = 200;
  const NO_RULE = "-";
  // The Change filter's value for the events whose decision changed from one thing to another (record.change).
  const CHANGED_TO = "change:";
  const ARROW = "\u2192";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const meta = data.meta;
  const events = data.events;
  // What the records repeat is in the page once (report_page._Shared). An event's trace names its steps as they
  // ended, [step, ms] each, and is rebuilt here; its rules tried are runs, [first rule, how many rules from it,
  // result], rebuilt when its explanation opens (hundreds of rules an event would weigh on every event otherwise).
  const shared = data.shared;
  events.forEach((ev) => {
    if (ev.steps) {
      ev.record.trace = ev.steps.map(([step, ...ms]) => ({ ...shared.steps[step], ...(ms.length ? { ms: ms[0] } : {}) }));
    }
  });
  const rulesTried = (ev) =>
    ev.tried
      ? ev.tried.flatMap(([first, count, result]) =>
          Array.from({ length: count }, (_, i) => ({ ...shared.rules[first + i], ...shared.results[result] })),
        )
      : ev.record.rules || [];
  const $ = (id) => document.getElementById(id);
  const fmt = (n) => n.toLocaleString("en-US");
  const plural = (n, word) => `${fmt(n)} ${word}${n === 1 ? "" : "s"}`;
  // not_compared: a pipeline whose rules one lane's directory lacked (a pulled bundle) ran the same rules in both.
  const KIND_LABELS = { changed: "changed", knock_on: "knock-on", unchanged: "unchanged", not_compared: "not compared" };
  const kindClass = (kind) => `kind-${kind.replace("_", "-")}`;

  // Characters that would reorder or hide the text around them (bidi controls, invisible and control characters)
  // show as their \u escape, as JSON shows controls: a capture cannot make "evil\u202etxt.exe" read "evilexe.txt".
  const HIDDEN = new RegExp(data.hidden, "g"); // report_page.HIDDEN_PATTERN
  const shown = (text) => String(text).replace(HIDDEN, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = shown(text);
    return node;
  }

  events.forEach((ev, i) => {
    ev.index = i;
    ev.sourceKey = String(ev.record.source ?? "").toLowerCase();
  });

  // The directory every source is under (up to its last slash), when there are several: each cell shows its source
  // below it, the whole path in its title, so that long paths (a capture synced to /home/ops/…) leave narrow
  // screens room.
  function commonDirectory(paths) {
    if (paths.length < 2) return "";
    let prefix = paths[0].slice(0, paths[0].lastIndexOf("/") + 1);
    for (const path of paths) {
      while (prefix && !path.startsWith(prefix)) {
        const cut = prefix.length > 1 ? prefix.lastIndexOf("/", prefix.length - 2) : -1;
        prefix = cut < 0 ? "" : prefix.slice(0, cut + 1);
      }
    }
    return prefix;
  }
  const sourceDirectory = commonDirectory(events.map((ev) => String(ev.record.source ?? "")));
  const hasKinds = events.some((ev) => ev.kind);
  // A pipeline column (and filter) only when the events did not all go through the one the diagram names.
  const hasPipeline = new Set(events.map((ev) => ev.record.pipeline ?? "")).size > 1;
  const sketches = new Map((data.pipelines || [data.pipeline]).map((sketch) => [sketch.name, sketch]));
  // Both lanes' deciding rules: an event is found by either.
  events.forEach((ev) => {
    ev.rules = [...new Set([...ev.decided, ...(ev.baseline_decided || [])])];
  });
  const version = (r) => r.rules_version ?? meta.rules_version ?? "";
  // One version for every event is said once, in the header; a column only when they differ.
  const versions = new Set(events.map((ev) => version(ev.record)));
  const hasVersion = versions.size > 1;
  // The header names each lane's rules version: one, or one per pipeline ("twilio_inbound 20c4…, email_inbound 5f46…").
  function laneVersions(read, fallback) {
    const byPipeline = new Map();
    events.forEach((ev) => {
      const found = read(ev.record) ?? fallback;
      if (found) byPipeline.set(ev.record.pipeline ?? "", found);
    });
    const distinct = new Set(byPipeline.values());
    if (distinct.size <= 1) return [...distinct][0] ?? fallback ?? "";
    return [...byPipeline].map(([pipeline, found]) => `${pipeline} ${found}`).join(", ");
  }
  const sharedVersion = laneVersions((r) => r.rules_version, meta.rules_version);
  const baselineVersion = laneVersions((r) => r.baseline_rules_version, meta.baseline_rules_version);

  function outcomeClass(r) {
    if (r.raised) return "o-raised";
    return r.error_code == null ? "o-ok" : "o-error";
  }

  // Right-to-left letters (Hebrew, Arabic and the like): the digits and slashes after them would join their run.
  const RTL = /[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]|\ud802[\udc00-\udfff]|\ud83a[\udc00-\udfff]/;

  // A span of text that may wrap after an underscore or a slash only (CONVERSATION_<wbr>NOT_<wbr>FOUND). With
  // right-to-left letters, each part is isolated (report_page.css: .segment), so that captures/לקוח/2/1.json does not
  // read captures/2/1/לקוח.json: the parts keep their order, each shown in its own direction.
  function code(className, text) {
    const span = el("span", className);
    const value = shown(text);
    const isolate = RTL.test(value);
    value.split(/(?<=[_/])/).forEach((part, i) => {
      if (i) span.append(document.createElement("wbr"));
      span.append(isolate ? el("span", "segment", part) : part);
    });
    return span;
  }

  // A value, then what the baseline had struck through before it when they differ.
  function compared(td, current, baseline, className) {
    if (baseline !== undefined && baseline !== current) {
      td.append(code("was", baseline ?? "\u2014"), el("span", "to", ARROW), document.createElement("wbr"));
    }
    td.append(code(className, current ?? "\u2014"));
  }

  const VERBS = { put_item: "put", delete_item: "delete", send_message: "send" };

  function actionsCell(td, actions) {
    for (const action of actions || []) {
      const span = el("span", "action", `${VERBS[action.type] ?? action.type} ${action.table ?? action.queue ?? ""}`);
      if (action.condition_failed) {
        span.classList.add("failed");
        span.textContent += " (not applied)";
      }
      if (td.childNodes.length) td.append(", ");
      td.append(span);
    }
    if (!td.childNodes.length) td.append(el("span", "muted", "none"));
  }

  const columns = [
    { key: "index", label: "#", cell: (td, ev) => (td.textContent = ev.index + 1) },
    {
      key: "source",
      label: "Source",
      cell: (td, ev) => {
        if (ev.masked) {
          const mark = el("span", "masked-mark", "\u26a0");
          mark.title = "recorded with masked data";
          td.append(mark);
        }
        const source = String(ev.record.source ?? "");
        td.append(code(null, source.slice(sourceDirectory.length)));
        if (sourceDirectory) td.title = shown(source);
      },
    },
    hasPipeline && { key: "pipeline", label: "Pipeline", cell: (td, ev) => td.append(code(null, ev.record.pipeline ?? "")) },
    {
      key: "outcome",
      label: "Outcome",
      cell: (td, ev) => compared(td, ev.record.outcome, ev.record.baseline_outcome, outcomeClass(ev.record)),
    },
    { key: "target", label: "Target", cell: (td, ev) => compared(td, ev.record.target, ev.record.baseline_target) },
    {
      key: "rule",
      label: "Deciding rule",
      cell: (td, ev) => {
        const now = ev.decided.join(", ") || "\u2014";
        const was = ev.baseline_decided && (ev.baseline_decided.join(", ") || "\u2014");
        compared(td, now, was === undefined ? undefined : was);
      },
    },
    { key: "actions", label: "Actions", cell: (td, ev) => actionsCell(td, ev.record.actions) },
    hasVersion && { key: "version", label: "Rules", cell: (td, ev) => (td.textContent = shown(version(ev.record))) },
    hasKinds && {
      key: "change",
      label: "Change",
      cell: (td, ev) => {
        if (ev.kind && ev.kind !== "unchanged") td.append(el("span", `badge ${kindClass(ev.kind)}`, KIND_LABELS[ev.kind]));
      },
    },
  ].filter(Boolean);

  function row(ev) {
    const tr = el("tr", "event");
    tr.tabIndex = 0;
    tr.dataset.index = ev.index;
    tr.setAttribute("aria-expanded", "false");
    if (ev.kind) tr.classList.add(kindClass(ev.kind));
    for (const column of columns) {
      const td = el("td", `c-${column.key}`);
      td.dataset.label = column.label;
      column.cell(td, ev);
      if (!td.title) td.title = td.textContent;
      tr.append(td);
    }
    return tr;
  }

  function pretty(value) {
    if (typeof value === "string") {
      try {
        return /^\s*[[{]/.test(value) ? JSON.stringify(JSON.parse(value), null, 2) : value;
      } catch {
        return value;
      }
    }
    return JSON.stringify(value, null, 2);
  }

  function table(headings, rows) {
    const head = el("tr");
    headings.forEach((h) => {
      const th = el("th", null, h);
      th.scope = "col";
      head.append(th);
    });
    const body = el("tbody");
    rows.forEach((cells) => {
      const tr = el("tr");
      cells.forEach((cell) => tr.append(cell instanceof Node ? cell : el("td", null, cell)));
      body.append(tr);
    });
    const t = el("table");
    t.append(el("thead"), body);
    t.tHead.append(head);
    return t;
  }

  // What a rule read: one "path = value" line each, wrapped within its panel.
  function inputsCell(inputs) {
    const td = el("td", "mono inputs");
    td.colSpan = 3;
    for (const [path, value] of Object.entries(inputs ?? {})) {
      const line = el("div", "input");
      line.append(el("span", "path", path), el("span", "eq", " = "), el("span", "value", JSON.stringify(value)));
      td.append(line);
    }
    return td;
  }

  function section(title, ...content) {
    const box = el("div", "part");
    box.dataset.part = title;
    box.append(el("h3", null, title), ...content);
    return box;
  }

  function detail(ev) {
    const r = ev.record;
    const td = el("td");
    td.colSpan = columns.length;
    const facts = el("div", "facts");
    const fact = (label, value, node = (text) => document.createTextNode(shown(text))) => {
      if (value === undefined || value === null || value === "") return;
      const span = el("span");
      span.append(el("b", null, label), node(value));
      facts.append(span);
    };
    fact("source", r.source, (value) => code(null, value));
    fact("pipeline", r.pipeline);
    fact("outcome", r.outcome);
    fact("error code", r.error_code);
    fact("status", r.raised ? "raised" : r.status_code);
    fact("signature", r.signature);
    fact("queue", r.queue);
    fact("baseline", r.baseline_outcome === undefined ? null : `${r.baseline_outcome} ${r.baseline_target ?? ""}`);
    fact("change", r.change ?? (ev.kind ? KIND_LABELS[ev.kind] : null));
    const decidedText = (rules) => rules.join(", ") || "no rule";
    const withVersion = (text, v) => (v ? `${text} (rules ${v})` : text);
    fact("deciding rule", withVersion(decidedText(ev.decided), version(r)));
    if (ev.baseline_decided) {
      fact("baseline deciding rule", withVersion(decidedText(ev.baseline_decided), r.baseline_rules_version ?? meta.baseline_rules_version));
    }
    fact("message", r.message);
    fact("exception", r.exception);
    td.append(facts);

    const grid = el("div", "detail-grid");
    // A step or status breaks after an underscore only and a duration not at all (report_page.css: td.name, td.ms).
    const name = (text) => {
      const td = el("td", "name");
      td.append(code(null, text ?? ""));
      return td;
    };
    const trace = (r.trace || []).map((t) => {
      const ms = el("td", "ms", typeof t.ms === "number" ? t.ms.toFixed(2) : t.ms);
      return [name(t.step), name(t.status), ms, t.decision ?? ""];
    });
    grid.append(section("Trace", table(["step", "status", "ms", "decision"], trace)));
    // Each rule, then what it read on a row of its own under it (full width: values can be long).
    const rules = rulesTried(ev).flatMap((rule) => {
      // A rule that decided its set without matching is the one whose condition failed (INTERNAL_ERROR).
      const failed = !rule.matched && ev.decided.includes(`${rule.ruleset}/${rule.rule}`);
      const verdict = rule.matched ? "matched" : failed ? "condition failed" : "no";
      const tried = [rule.ruleset, rule.rule, el("td", rule.matched ? "matched" : "muted", verdict)];
      return Object.keys(rule.inputs ?? {}).length ? [tried, [inputsCell(rule.inputs)]] : [tried];
    });
    const ruleHeadings = ["rule set", "rule", ""];
    grid.append(section("Rules tried", rules.length ? table(ruleHeadings, rules) : el("p", "muted", "none")));
    const actions = section("Actions");
    for (const a of r.actions || []) {
      const where = a.table ?? a.queue ?? "";
      const extra = [a.delay_seconds === undefined ? "" : `delay ${a.delay_seconds}s`, a.condition_failed ? "condition failed: not applied" : ""];
      actions.append(el("div", "mono", [a.type, where, ...extra].filter(Boolean).join("  ")));
      actions.append(el("pre", null, pretty(a.item ?? a.key ?? a.body ?? null)));
    }
    if (!(r.actions || []).length) actions.append(el("p", "muted", "none"));
    grid.append(actions);
    const side = el("div");
    if ((r.notes || []).length) {
      const list = el("ul");
      r.notes.forEach((note) => list.append(el("li", null, note)));
      side.append(section("Notes", list));
    }
    const response = r.response
      ? [el("div", "mono", `${r.response.status_code} ${r.response.content_type ?? ""}`), el("pre", null, pretty(r.response.body))]
      : [el("p", "o-raised", `raised${r.exception ? `: ${r.exception}` : ""}`)];
    side.append(section("Response", ...response));
    grid.append(side);
    td.append(grid);
    const tr = el("tr", "detail");
    tr.append(td);
    return tr;
  }

  function toggle(tr) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("detail")) {
      next.remove();
      tr.setAttribute("aria-expanded", "false");
      tr.removeAttribute("aria-controls");
    } else {
      const opened = detail(events[Number(tr.dataset.index)]);
      opened.id = `detail-${tr.dataset.index}`;
      tr.after(opened);
      tr.setAttribute("aria-controls", opened.id);
      tr.setAttribute("aria-expanded", "true");
    }
  }

  const stepBoxes = new Map();
  let drawn = null;

  function stepBox(step) {
    const box = el("div", "step");
    box.dataset.step = step.id;
    box.append(el("div", "id", step.id), el("div", "uses mono", step.uses));
    if (step.when) box.append(el("div", "when mono", `when ${step.when}`));
    const counts = el("div", "counts");
    box.append(counts);
    stepBoxes.set(step.id, { box, counts });
    return box;
  }

  function drawPipeline(sketch) {
    if (drawn === sketch) return;
    drawn = sketch;
    stepBoxes.clear();
    $("pipeline-name").textContent = shown(sketch.name);
    const diagram = $("diagram");
    diagram.replaceChildren();
    diagram.dataset.pipeline = sketch.name;
    sketch.steps.forEach((node, i) => {
      if (i) diagram.append(el("span", "arrow", ARROW));
      if (node.parallel) {
        const group = el("div", "parallel");
        group.title = "parallel: these steps run concurrently";
        node.parallel.forEach((member) => group.append(stepBox(member)));
        diagram.append(group);
      } else {
        diagram.append(stepBox(node));
      }
    });
  }

  // The pipeline to draw: the one filtered to, else the one most of the events shown went through.
  function pipelineOf(list) {
    const chosen = $("f-pipeline").value;
    if (chosen && sketches.has(chosen)) return sketches.get(chosen);
    const used = new Map(tally(list.map((ev) => ev.record.pipeline).filter((name) => name && sketches.has(name))));
    // The most used; on a tie, the one most events of the whole report went through (listed first).
    const best = [...sketches.keys()].reduce((a, b) => ((used.get(b) || 0) > (used.get(a) || 0) ? b : a));
    return used.size ? sketches.get(best) : data.pipeline;
  }

  // Per step of the drawn pipeline, over its own events only (other pipelines share step ids):
  // reached (ran), skipped (its condition was false), errors (ended with an error code).
  function countSteps(list) {
    drawPipeline(pipelineOf(list));
    const own = list.filter((ev) => !ev.record.pipeline || ev.record.pipeline === drawn.name);
    const tally = new Map();
    for (const ev of own) {
      for (const entry of ev.record.trace || []) {
        let t = tally.get(entry.step);
        if (!t) tally.set(entry.step, (t = { reached: 0, skipped: 0, errors: 0 }));
        const status = String(entry.status);
        if (status.startsWith("skipped")) t.skipped++;
        else {
          t.reached++;
          if (status !== "ok" && status !== "stopped") t.errors++;
        }
      }
    }
    for (const [id, { box, counts }] of stepBoxes) {
      const t = tally.get(id) || { reached: 0, skipped: 0, errors: 0 };
      counts.replaceChildren(el("span", "reached", `${fmt(t.reached)} reached`));
      if (t.skipped) counts.append(el("span", "skipped", `${fmt(t.skipped)} skipped`));
      if (t.errors) counts.append(el("span", "errors", plural(t.errors, "error")));
      Object.assign(box.dataset, t);
      box.classList.toggle("has-errors", t.errors > 0);
      box.classList.toggle("unreached", t.reached === 0);
    }
    const others = list.length - own.length;
    const left = others
      ? `; ${plural(others, "event")} of ${[...new Set(list.map((ev) => ev.record.pipeline).filter((name) => name && name !== drawn.name))].join(", ")} not counted`
      : "";
    const scope = $("diagram-scope");
    scope.textContent = shown(`\u00b7 counts over the ${plural(own.length, "event")} of this pipeline shown${left}`);
    scope.dataset.counted = own.length;
    scope.dataset.left = others;
  }

  function tally(keys) {
    const counts = new Map();
    keys.forEach((key) => counts.set(key, (counts.get(key) || 0) + 1));
    return [...counts].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
  }

  function fillSelect(select, all, entries, label = (v) => v) {
    select.replaceChildren(new Option(all, ""));
    for (const [value, n] of entries) select.append(new Option(shown(`${label(value)} (${fmt(n)})`), value));
  }

  function chip(text, n, className, onClick) {
    const button = el("button", `chip ${className}`, text);
    button.type = "button";
    button.append(el("span", "n", fmt(n)));
    button.addEventListener("click", onClick);
    return button;
  }

  function choose(select, value) {
    select.value = value;
    apply();
  }

  function summarize() {
    const box = $("summary");
    box.append(el("span", "total", plural(events.length, "event")));
    const outcomes = tally(events.map((ev) => ev.record.outcome));
    const classOf = new Map(events.map((ev) => [ev.record.outcome, outcomeClass(ev.record)]));
    for (const [outcome, n] of outcomes) {
      box.append(chip(outcome, n, classOf.get(outcome), () => choose($("f-outcome"), outcome)));
    }
    fillSelect($("f-outcome"), "all outcomes", outcomes);
    if (hasPipeline) fillSelect($("f-pipeline"), "all pipelines", tally(events.map((ev) => ev.record.pipeline ?? "").filter(Boolean)));
    else $("f-pipeline-label").hidden = true;
    const rules = tally(events.flatMap((ev) => (ev.rules.length ? ev.rules : [NO_RULE])));
    fillSelect($("f-rule"), "all rules", rules, (v) => (v === NO_RULE ? "(no rule decided)" : v));
    if (hasKinds) {
      const kinds = new Map(tally(events.map((ev) => ev.kind).filter(Boolean)));
      const entries = Object.keys(KIND_LABELS)
        .map((kind) => [kind, kinds.get(kind) || 0])
        .filter(([kind, n]) => n || kind !== "not_compared");
      box.append(el("span", "group", meta.baseline ? `against baseline ${meta.baseline}:` : "against the baseline:"));
      for (const [kind, n] of entries) {
        box.append(chip(KIND_LABELS[kind], n, kindClass(kind), () => choose($("f-change"), kind)));
      }
      fillSelect($("f-change"), "all events", entries, (v) => KIND_LABELS[v]);
      // What the changed events changed from and to, as the CLI's summary lists them ("A → B  n"), each a filter.
      const changes = tally(events.map((ev) => ev.record.change).filter(Boolean));
      if (changes.length) {
        box.append(el("span", "group", "changed from \u2192 to:"));
        const group = document.createElement("optgroup");
        group.label = "changed from \u2192 to";
        for (const [change, n] of changes) {
          box.append(chip(change, n, "change", () => choose($("f-change"), CHANGED_TO + change)));
          group.append(new Option(shown(`${change} (${fmt(n)})`), CHANGED_TO + change));
        }
        $("f-change").append(group);
      }
    } else {
      $("f-change-label").hidden = true;
    }
  }

  function banners() {
    const box = $("banners");
    if (meta.notes.length) {
      const banner = el("div", `banner notes${meta.notes.some((n) => n.masked) ? " warn" : ""}`);
      const list = el("ul");
      meta.notes.forEach((note) => list.append(el("li", null, note.text)));
      banner.append(el("strong", null, "Notes on this replay"), list);
      box.append(banner);
    }
    const masked = events.filter((ev) => ev.masked);
    if (masked.length) {
      const banner = el("div", "banner warn masked-banner");
      banner.append(
        el("strong", null, `\u26a0 ${fmt(masked.length)} of ${plural(events.length, "event")} carry notes about masked data`),
        document.createTextNode(": rules that read a masked field saw the mask, not the real value, so their decisions may differ in production."),
      );
      const list = el("ul");
      [...new Set(masked.flatMap((ev) => ev.masked))].slice(0, 3).forEach((note) => list.append(el("li", null, note)));
      banner.append(list);
      box.append(banner);
    }
  }

  let matched = [];
  let rendered = 0;

  function renderMore(count = CHUNK) {
    const end = Math.min(rendered + count, matched.length);
    const rows = document.createDocumentFragment();
    for (; rendered < end; rendered++) rows.append(row(matched[rendered]));
    $("rows").append(rows);
    const left = matched.length - rendered;
    $("more").hidden = left === 0;
    $("more-button").textContent = `Show ${fmt(Math.min(CHUNK, left))} more (${fmt(left)} not shown yet)`;
  }

  function apply() {
    const outcome = $("f-outcome").value;
    const pipeline = $("f-pipeline").value;
    const rule = $("f-rule").value;
    const kind = $("f-change").value;
    const text = $("f-source").value.trim().toLowerCase();
    matched = events.filter(
      (ev) =>
        (!outcome || ev.record.outcome === outcome) &&
        (!pipeline || ev.record.pipeline === pipeline) &&
        (!rule || (rule === NO_RULE ? ev.rules.length === 0 : ev.rules.includes(rule))) &&
        (!kind || (kind.startsWith(CHANGED_TO) ? ev.record.change === kind.slice(CHANGED_TO.length) : ev.kind === kind)) &&
        (!text || ev.sourceKey.includes(text)),
    );
    $("rows").replaceChildren();
    rendered = 0;
    renderMore();
    const count = $("count");
    count.textContent = `${fmt(matched.length)} of ${plural(events.length, "event")}`;
    count.dataset.matching = matched.length;
    $("empty").textContent = events.length ? "No events match the filters." : "No events in this report.";
    $("empty").hidden = matched.length > 0;
    countSteps(matched);
    // The rows start again from the first match: a reader scrolled past the list's top is taken back to it.
    if ($("rows").getBoundingClientRect().top < 0) $("events").scrollIntoView();
  }

  $("title").textContent = shown(meta.title);
  $("meta").textContent = shown([
    `generated ${meta.generated_at}`,
    sharedVersion && `rules ${sharedVersion}`,
    meta.baseline && `baseline ${meta.baseline}${baselineVersion ? ` (rules ${baselineVersion})` : ""}`,
    meta.world && `world ${meta.world}`,
  ]
    .filter(Boolean)
    .join(" \u00b7 "));
  const head = $("columns");
  columns.forEach((column) => {
    const th = el("th", `c-${column.key}`, column.label);
    th.scope = "col";
    head.append(th);
  });
  if (sourceDirectory) head.querySelector("th.c-source").title = shown(`under ${sourceDirectory}`);
  banners();
  summarize();
  apply();

  ["f-outcome", "f-pipeline", "f-rule", "f-change"].forEach((id) => $(id).addEventListener("change", apply));
  let typing = 0;
  $("f-source").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 120);
  });
  // The filters stick to the window's top (report_page.css): a row the keyboard or a scroll brings into view stops
  // below them, not under them.
  const filters = document.querySelector(".filters");
  new ResizeObserver(() => {
    const sticky = getComputedStyle(filters).position === "sticky";
    document.documentElement.style.scrollPaddingTop = sticky ? `${filters.offsetHeight}px` : "";
  }).observe(filters);
  $("more-button").addEventListener("click", () => renderMore());
  // Paper (or a PDF) cannot scroll for more: printing builds every row the filters match.
  window.addEventListener("beforeprint", () => renderMore(matched.length));
  new IntersectionObserver((seen) => seen.some((e) => e.isIntersecting) && renderMore(), { rootMargin: "800px" }).observe($("more"));
  $("rows").addEventListener("click", (e) => {
    const tr = e.target.closest("tr.event");
    if (tr && !window.getSelection().toString()) toggle(tr);
  });
  $("rows").addEventListener("keydown", (e) => {
    if ((e.key === "Enter" || e.key === " ") && e.target.matches("tr.event")) {
      e.preventDefault();
      toggle(e.target);
    }
  });
  document.documentElement.dataset.ready = "true";
  document.documentElement.dataset.renderMs = Math.round(performance.now());
})();
