// Agent desk: outcome buttons, the two VES items, keyboard shortcuts, and the post to
// /desk/outcome (session cookie + CSRF header; the API key never reaches this page).
"use strict";

(function () {
  const desk = document.getElementById("desk");
  // Recorded times are sent in UTC: shown in the agent's own time, its zone named.
  for (const el of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(el.getAttribute("datetime"));
    if (isNaN(moment)) continue;
    el.title = el.textContent;
    el.textContent = moment.toLocaleString(document.documentElement.lang || undefined, {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      timeZoneName: "short",
    });
  }
  const form = document.getElementById("outcome");
  if (!desk || !form) return;
  const quiet = desk.dataset.quiet === "true";
  const statusLine = document.getElementById("status-line");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const buttons = Array.from(form.querySelectorAll("button[data-status]"));
  const clearButtons = Array.from(form.querySelectorAll("button[data-clear]"));
  const VES_ITEMS = ["ves_confidence", "ves_ability"];
  const messages = JSON.parse(document.getElementById("desk-messages").textContent);
  // What the agent entered survives a reload, a sign-in in another tab or a failed post:
  // kept per decision in this tab until the outcome is recorded.
  // Keyed by the suggestion too: the desktop may decide the contact again (same decision
  // id, another suggestion), and entries about the old one must not come back.
  const draftKey = "vea-desk-draft:" + desk.dataset.decisionId + ":" + desk.dataset.shownActivity;
  // Quiet contacts attempt nothing: the only possible status is "skipped".
  let status = quiet ? "skipped" : null;
  let sent = false;
  let busy = false; // a post in flight: a second Enter or click must not post again
  // A server that hangs (a worker stuck on the database) held "Recording…" and a disabled
  // button until gunicorn killed it or for minutes: the agent, mid-call, must be told.
  const RECORD_TIMEOUT_MS = 15000;

  // In a short side panel the form is below the hint: what a key changed and the answer
  // to Record would otherwise be written out of sight.
  function reveal(element) {
    if (element && element.scrollIntoView) element.scrollIntoView({ block: "nearest" });
  }

  function say(text, kind, link, action) {
    // Errors interrupt (a screen reader says them at once); success is polite.
    // (aria-live set too: the element's explicit "polite" would override the alert role.)
    // Set before the text, so the text is announced the way it is meant.
    statusLine.setAttribute("role", kind === "error" ? "alert" : "status");
    statusLine.setAttribute("aria-live", kind === "error" ? "assertive" : "polite");
    statusLine.textContent = text;
    statusLine.className = "status-line " + (kind || "");
    if (link) {
      // Same tab: the sign-in comes back to this page, whose entries this tab keeps.
      const a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      statusLine.append(" ", a);
    }
    if (action) {
      // A way out of the failure on the spot (the survey's conflicting answers).
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = action.text;
      b.addEventListener("click", action.run);
      statusLine.append(" ", b);
    }
    if (text) reveal(statusLine);
  }

  // Each item's Clear button shows while the item has an answer (nothing to clear
  // otherwise, and one Tab stop fewer).
  function showClearButtons() {
    for (const b of clearButtons) b.hidden = sent || vesValue(b.dataset.clear) === null;
  }

  // The entries changed: the Clear buttons follow, and the draft keeps them (a cleared
  // answer is saved as none, so a reload does not bring it back).
  function saveDraft() {
    showClearButtons();
    try {
      const draft = { status: status, ves_confidence: vesValue("ves_confidence"),
                      ves_ability: vesValue("ves_ability") };
      sessionStorage.setItem(draftKey, JSON.stringify(draft));
    } catch (err) { /* storage off: the entries stay on the page */ }
  }

  function restoreDraft() {
    let draft = null;
    try { draft = JSON.parse(sessionStorage.getItem(draftKey) || "null"); } catch (err) { }
    if (!draft) return;
    // The VES answers first: choose() saves the draft, which must still hold them.
    for (const item of VES_ITEMS) {
      const input = draft[item] && form.querySelector(
        'input[name="' + item + '"][value="' + Number(draft[item]) + '"]');
      if (input) input.checked = true;
    }
    if (!quiet && draft.status) choose(draft.status);
  }

  function clearEntries() {
    status = quiet ? "skipped" : null;
    for (const b of buttons) b.setAttribute("aria-pressed", "false");
    for (const input of form.querySelectorAll("input:checked")) input.checked = false;
    showClearButtons();
  }

  // A VES item's answer taken back: the customer was not asked, a digit slipped, or the
  // survey already holds another answer. Saved at once, so a reload keeps it cleared.
  function clearItem(item, refocus) {
    if (sent) return;
    const checked = form.querySelector('input[name="' + item + '"]:checked');
    if (checked) checked.checked = false;
    saveDraft();
    // The Clear button hides with the answer: the focus goes to the item's scale.
    if (refocus) form.querySelector('input[name="' + item + '"]').focus();
  }

  function disableForm() {
    sent = true;
    form.classList.add("done");
    for (const input of form.querySelectorAll("input, button")) input.disabled = true;
    showClearButtons();
  }

  function choose(name) {
    if (sent) return;
    status = name;
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.status === name));
    say("");
    saveDraft();
  }

  function vesValue(item) {
    const checked = form.querySelector('input[name="' + item + '"]:checked');
    return checked ? Number(checked.value) : null;
  }

  // A digit answers the VES item that has the focus (so an answer can be corrected),
  // else the first item still empty, then the second.
  function typeDigit(digit, target) {
    if (sent) return;
    const details = form.closest("details"); // quiet contacts keep the form folded
    if (details) details.open = true;
    const focused = target && target.closest && target.closest("fieldset.ves");
    const items = focused ? [focused.dataset.item]
      : VES_ITEMS.filter((item) => vesValue(item) === null);
    if (!items.length) return;
    const input = form.querySelector('input[name="' + items[0] + '"][value="' + digit + '"]');
    if (!input) return;
    input.checked = true;
    if (focused) input.focus(); // the focus moves with the answer, as an arrow key's does
    reveal(input.closest(".pill"));
    saveDraft();
  }

  function fieldName(name) {
    const legend = form.querySelector('fieldset[data-item="' + name + '"] legend')
      || (name === "status" && form.querySelector("fieldset.status legend"));
    return legend ? legend.textContent.trim() : name;
  }

  // The page's own words for each failure (the server's messages are English).
  function failure(response, answer) {
    const error = answer.error || {};
    const code = error.code || "";
    if (response.status === 401) {
      const next = location.pathname + location.search;
      return [messages.err_session, { href: "/login?next=" + encodeURIComponent(next),
                                      text: messages.err_sign_in }];
    }
    if (response.status === 403) return [messages.err_csrf];
    if (code === "decision_changed") return [messages.err_changed];
    if (code === "outcome_exists") {
      // The reloaded page shows the stored outcome (and disables the form).
      return [messages.err_exists, { href: location.pathname + location.search,
                                     text: messages.err_show_recorded }];
    }
    const names = Object.keys(error.fields || {}).filter((n) => n !== "_schema");
    const field = names.map(fieldName).join(messages.list_separator || ", ");
    // The survey system's answers came first; the agent's differing VES is not stored.
    // The way out: record without those items (the survey's answers fill them).
    if (code === "survey_conflict" && names.length) {
      const ves = names.every((n) => VES_ITEMS.includes(n));
      const action = ves ? { text: messages.survey_record, run: () => recordWithout(names) }
        : null;
      return [messages.err_survey.replace("{field}", field), null, action];
    }
    if (response.status === 422 || response.status === 400 || code === "survey_conflict") {
      // Without a field to name, the page's own words (the server's message is English).
      return names.length
        ? [messages.err_invalid.replace("{field}", field)]
        : [messages.err_refused.replace("{status}", String(response.status))];
    }
    if (response.status === 429) {
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      return [messages.err_busy.replace("{seconds}", String(seconds))];
    }
    if (response.status === 503) return [messages.err_down];
    return [messages.err_other.replace("{status}", String(response.status))];
  }

  async function record() {
    if (sent || busy) return;
    // A quiet contact keeps the form folded: unfold it, or the answer (recorded, or
    // why not) would be written where the agent cannot see it.
    const details = form.closest("details");
    if (details) details.open = true;
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
    busy = true;
    button.disabled = true;
    say(messages.recording, "");
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), RECORD_TIMEOUT_MS);
    try {
      const response = await fetch("/desk/outcome", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) {
        disableForm();
        try { sessionStorage.removeItem(draftKey); } catch (err) { }
        say(desk.dataset.msgRecorded, "ok");
      } else {
        const [text, link, action] = failure(response, answer);
        if (response.status === 409 && answer.error && answer.error.code === "outcome_exists") {
          // Recorded once already (another tab, the desktop): nothing here can change it,
          // and this tab's entries must not stay on show as if they were what is stored.
          clearEntries();
          disableForm();
          try { sessionStorage.removeItem(draftKey); } catch (err) { }
        }
        say(text, "error", link, action);
      }
    } catch (err) {
      say(err && err.name === "AbortError" ? messages.err_no_answer : messages.err_offline,
          "error");
    } finally {
      clearTimeout(timer);
      busy = false;
      if (!sent) button.disabled = false;
      keepFocus(button);
    }
  }

  function recordWithout(items) {
    for (const item of items) clearItem(item, false);
    record();
  }

  // Disabling the focused Record button drops the focus to the page's start: a keyboard
  // or screen reader user would have to find their place again. It goes back to Record
  // (to try again), or, once the form is disabled, to the answer ("Recorded.").
  function keepFocus(button) {
    const active = document.activeElement;
    if (active && active !== document.body && !active.disabled) return; // not lost
    (button.disabled ? statusLine : button).focus();
  }

  if (desk.dataset.recorded === "true") {
    disableForm(); // its outcome is shown above the form
    try { sessionStorage.removeItem(draftKey); } catch (err) { }
    return;
  }
  restoreDraft();
  showClearButtons();
  for (const b of buttons) b.addEventListener("click", () => choose(b.dataset.status));
  for (const b of clearButtons) b.addEventListener("click", () => clearItem(b.dataset.clear, true));
  form.addEventListener("change", saveDraft);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    record();
  });

  // The letter and digit keys can be turned off (WCAG 2.1.4: a speech-input user's words
  // arrive as keystrokes and would choose outcomes); remembered in this browser. Enter,
  // not a character, stays.
  const keysOff = document.getElementById("keys-off");
  const KEYS_OFF = "vea-desk-keys-off";
  function showKeys() {
    const off = Boolean(keysOff && keysOff.checked);
    desk.classList.toggle("keys-off", off);
    for (const b of buttons) {
      if (off) b.removeAttribute("aria-keyshortcuts");
      else b.setAttribute("aria-keyshortcuts", b.querySelector("kbd").textContent);
    }
  }
  if (keysOff) {
    try { keysOff.checked = localStorage.getItem(KEYS_OFF) === "1"; } catch (err) { }
    keysOff.addEventListener("change", () => {
      try { localStorage.setItem(KEYS_OFF, keysOff.checked ? "1" : "0"); } catch (err) { }
      showKeys();
    });
    showKeys();
  }

  const keys = { o: "offered", a: "accepted", d: "declined", s: "skipped" };
  // Letters and digits typed into a field are the field's (a search box, a select, an
  // editable area a browser extension adds), not shortcuts: only the desk's own radios
  // and buttons pass.
  const NOT_TYPED = /^(radio|checkbox|button|submit|reset)$/;
  function typing(target) {
    if (!target) return false;
    if (target.isContentEditable) return true;
    if (target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
    return target.tagName === "INPUT" && !NOT_TYPED.test(target.type);
  }
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (typing(target)) return;
    // Keys pressed on a link, in the top bar (language, sign out) or on the keys' own
    // switch are theirs.
    if (target && target.closest && target.closest("a, .topbar, .keys-switch")) return;
    const key = event.key.toLowerCase();
    const characters = !(keysOff && keysOff.checked);
    // Delete or Backspace on a VES item takes its answer back (not characters: they
    // stay on with the letter and digit keys off).
    const item = target && target.closest && target.closest("fieldset.ves");
    if (item && (key === "delete" || key === "backspace")) {
      event.preventDefault();
      clearItem(item.dataset.item, target.dataset.clear !== undefined);
      return;
    }
    if (!quiet && characters && keys[key]) {
      event.preventDefault();
      choose(keys[key]);
      reveal(form.querySelector('button[data-status="' + keys[key] + '"]'));
    } else if (characters && /^[1-7]$/.test(key)) {
      event.preventDefault();
      typeDigit(key, target);
    } else if (key === "enter" && !(target && /^(BUTTON|SUMMARY)$/.test(target.tagName))) {
      event.preventDefault();
      record();
    }
  });
})();
