// Sluice web UI: the few things the server-rendered pages cannot do alone. No framework.
//  - times in the user's time zone (the UTC value stays in the title, shown on hover);
//  - regions marked data-refresh="N" re-read from the server every N seconds (the page is
//    fetched again and the region with the same id swapped in), so a run is followed live;
//  - a log marked data-tail grows while its try runs;
//  - forms marked data-api post their fields as JSON to the REST API;
//  - a click on a grid cell opens that task of that run; with the keyboard, the arrow keys move
//    a cursor over the focused grid (announced in its live region) and Enter opens the cell.
"use strict";

function localTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short",
  });
  for (const t of root.querySelectorAll("time[datetime]")) {
    const when = new Date(t.getAttribute("datetime"));
    if (!isNaN(when)) {
      t.textContent = format.format(when);
      t.title = t.getAttribute("datetime").replace("T", " ").replace("Z", " UTC");
    }
  }
}

function refreshing() {
  for (const region of document.querySelectorAll("[data-refresh]")) {
    const every = Number(region.dataset.refresh) * 1000;
    const tick = async () => {
      // A form being filled in is not swapped away from under the user.
      if (!region.contains(document.activeElement) || document.activeElement === document.body) {
        try {
          const response = await fetch(location.href, { headers: { "x-sluice-refresh": "1" } });
          if (response.ok) {
            const page = new DOMParser().parseFromString(await response.text(), "text/html");
            const fresh = page.getElementById(region.id);
            if (fresh) {
              region.replaceChildren(...fresh.childNodes);
              localTimes(region);
              wire(region);
              if (!fresh.hasAttribute("data-refresh")) return; // finished: stop polling
            }
          }
        } catch (_) { /* the server restarting: try again next time */ }
      }
      setTimeout(tick, every);
    };
    setTimeout(tick, every);
  }
}

function tail(log) {
  let from = Number(log.dataset.from || 0);
  const step = async () => {
    try {
      const response = await fetch(`${log.dataset.tail}?from=${from}`);
      if (response.ok) {
        const text = await response.text();
        const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        if (text) log.append(text);
        from = Number(response.headers.get("x-log-next") || from);
        if (atBottom) log.scrollTop = log.scrollHeight;
        if (response.headers.get("x-try-running") !== "true") return;
      }
    } catch (_) { /* try again */ }
    setTimeout(step, 1000);
  };
  setTimeout(step, 1000);
}

function fields(form) {
  const body = {};
  for (const input of form.querySelectorAll("input[name]")) {
    if (input.type === "checkbox") body[input.name] = input.checked;
    else if (input.name === "tasks") body.tasks = [input.value];
    else body[input.name] = input.value;
  }
  return body;
}

function wire(root) {
  for (const form of root.querySelectorAll("form[data-api]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = form.querySelector("output");
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const response = await fetch(form.dataset.api, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(fields(form)),
        });
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error(answer.error || response.statusText);
        if (out) { out.className = "ok"; out.textContent = "done"; }
        if (form.dataset.then === "open-run" && answer.id) location.href = `/runs/${answer.id}`;
        else setTimeout(() => location.reload(), 300);
      } catch (error) {
        if (out) { out.className = "bad"; out.textContent = error.message; }
      } finally {
        button.disabled = false;
      }
    });
  }
  for (const grid of root.querySelectorAll("table.grid[data-runs]")) {
    const runs = grid.dataset.runs.split(",");
    const heads = grid.querySelectorAll("thead th");
    const cell = (event) => {
      const td = event.target.closest("td");
      if (!td) return null;
      const row = td.parentElement;
      const column = td.cellIndex - 1;
      return { run: runs[column], task: row.dataset.task, head: heads[column + 1] };
    };
    grid.addEventListener("click", (event) => {
      const c = cell(event);
      if (c && c.run) openTask(c.run, c.task);
    });
    grid.addEventListener("mouseover", (event) => {
      const c = cell(event);
      if (c && c.head && !event.target.title) event.target.title = `${c.task} · ${c.head.title}`;
    });
    keyboard(grid, runs, heads);
  }
}

function openTask(run, task) {
  location.href = `/runs/${run}/tasks/${encodeURIComponent(task)}`;
}

const STATES = { s: "success", f: "failed", r: "running", q: "queued", u: "up for retry",
  x: "upstream failed", k: "skipped", d: "scheduled", n: "not yet" };

// The grid's box takes the focus; arrows move over 25,000 cells without making each a tab stop.
function keyboard(grid, runs, heads) {
  const box = grid.closest(".grid-box");
  const said = box && box.parentElement.querySelector("output.grid-cursor");
  const rows = grid.tBodies[0] ? grid.tBodies[0].rows : [];
  if (!box || !rows.length || !runs.length || !runs[0]) return;
  let row = 0, column = 0, current = null;
  const show = () => {
    if (current) current.classList.remove("cursor");
    current = rows[row].cells[column + 1];
    if (!current) return;
    current.classList.add("cursor");
    current.scrollIntoView({ block: "nearest", inline: "nearest" });
    const state = STATES[current.className.replace("cursor", "").trim()] || "not yet";
    // A column's title is "DAY TIME RUN_STATE".
    const [day, time] = heads[column + 1].title.split(" ");
    if (said) said.textContent = `${rows[row].dataset.task} · run of ${day} ${time}: ${state}`;
  };
  box.addEventListener("focus", show);
  box.addEventListener("keydown", (event) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
      Home: [0, -runs.length], End: [0, runs.length] };
    if (event.key === "Enter" && current) {
      openTask(runs[column], rows[row].dataset.task);
      return;
    }
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    row = Math.min(rows.length - 1, Math.max(0, row + move[0]));
    column = Math.min(runs.length - 1, Math.max(0, column + move[1]));
    show();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  wire(document);
  refreshing();
  const log = document.querySelector("pre.log[data-tail]");
  if (log) tail(log);
});
