// Agent desk: outcome buttons, the two VES items, keyboard shortcuts, and the post to
// /desk/outcome (session cookie + CSRF header; the API key never reaches this page).
"use strict";

(function () {
  const desk = document.getElementById("desk");
  const form = document.getElementById("outcome");
  if (!desk || !form) return;
  const quiet = desk.dataset.quiet === "true";
  const statusLine = document.getElementById("status-line");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const buttons = Array.from(form.querySelectorAll("button[data-status]"));
  // Quiet contacts attempt nothing: the only possible status is "skipped".
  let status = quiet ? "skipped" : null;
  let sent = false;

  function say(text, kind) {
    statusLine.textContent = text;
    statusLine.className = "status-line " + (kind || "");
  }

  function choose(name) {
    if (sent) return;
    status = name;
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.status === name));
    say("");
  }

  function vesValue(item) {
    const checked = form.querySelector('input[name="' + item + '"]:checked');
    return checked ? Number(checked.value) : null;
  }

  // Digits fill the first VES item that is still empty, then the second.
  function typeDigit(digit) {
    if (sent) return;
    const details = form.closest("details"); // quiet contacts keep the form folded
    if (details) details.open = true;
    for (const item of ["ves_confidence", "ves_ability"]) {
      if (vesValue(item) === null) {
        const input = form.querySelector('input[name="' + item + '"][value="' + digit + '"]');
        if (input) input.checked = true;
        return;
      }
    }
  }

  async function record() {
    if (sent) return;
    if (!status) {
      say(desk.dataset.msgChoose, "error");
      return;
    }
    const body = {
      decision_id: desk.dataset.decisionId,
      shown_activity: desk.dataset.shownActivity,
      status: status,
      ves_confidence: vesValue("ves_confidence"),
      ves_ability: vesValue("ves_ability"),
      agent_id: desk.dataset.agentId || null,
    };
    const button = document.getElementById("record");
    button.disabled = true;
    try {
      const response = await fetch("/desk/outcome", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) {
        sent = true;
        form.classList.add("done");
        for (const input of form.querySelectorAll("input, button")) input.disabled = true;
        say(desk.dataset.msgRecorded, "ok");
      } else {
        const message = (answer.error && answer.error.message) || response.statusText;
        say(desk.dataset.msgFailed.replace("{message}", message), "error");
        button.disabled = false;
      }
    } catch (err) {
      say(desk.dataset.msgFailed.replace("{message}", String(err)), "error");
      button.disabled = false;
    }
  }

  for (const b of buttons) b.addEventListener("click", () => choose(b.dataset.status));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    record();
  });

  const keys = { o: "offered", a: "accepted", d: "declined", s: "skipped" };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"))) return;
    const key = event.key.toLowerCase();
    if (!quiet && keys[key]) {
      event.preventDefault();
      choose(keys[key]);
    } else if (/^[1-7]$/.test(key)) {
      event.preventDefault();
      typeDigit(key);
    } else if (key === "enter" && !(target && target.tagName === "BUTTON")) {
      event.preventDefault();
      record();
    }
  });
})();
