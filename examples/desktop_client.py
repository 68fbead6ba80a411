"""A reference client for a contact-center desktop or routing platform calling vea.

Standard library only: copy it into an integration, or read it as the calling rules in
code. Two rules matter:

- **A decision never holds up a contact.** ``decide`` has a deadline (0.5 s by default):
  when vea does not answer in time, is unreachable, overloaded (429) or failing (5xx),
  it returns None and the desktop shows no hint. Within the deadline it retries, which
  is safe: the same ``interaction_id`` returns the stored decision, never a second one.
- **An outcome is never lost.** ``record_outcome`` and ``record_survey`` retry while vea
  is unavailable (connection errors, 5xx, 429, honouring ``Retry-After``), then keep the
  post in an outbox file (JSON lines) that ``flush`` sends later, e.g. at each new
  contact or on a timer. A replay is safe: vea answers 200 ``Idempotent-Replayed`` for
  what it has already stored. What resending cannot fix (a 409 conflict, a decision vea
  does not know, a 4xx for the body) is dropped from the outbox and returned to the
  caller to log, never retried forever. A 500 is vea's own failure: kept and resent,
  like an outage.

A decision answered with ``"stored": false`` (vea's database was down) cannot take an
outcome: vea learns only from decisions it stored, so ``record_outcome`` skips it.

One outbox file belongs to one process (the desktop's own): two processes sharing a
file would send each other's posts twice (harmless: replays) or lose a rewrite.

    client = VeaClient("https://vea.example.internal", key, outbox="var/vea-outbox.jsonl")
    decision = client.decide({"interaction_id": ..., "customer": {...}, "contact": {...}})
    ...
    client.record_outcome(decision, {"offered": True, "accepted": True, "agent_id": "a-17"})
    client.flush()  # e.g. before each new contact
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DECISION_DEADLINE_S = 0.5
WRITE_ATTEMPTS = 3
# The longest a write waits between attempts, whatever Retry-After asks: the agent's
# wrap-up screen is waiting; the outbox takes over after that.
MAX_WRITE_PAUSE_S = 2.0


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no HTTP answer (connection refused, timeout)
    body: dict[str, Any] | None
    retry_after_s: float | None = None

    @property
    def retryable(self) -> bool:
        """Worth sending again later: vea was unreachable, overloaded or failing."""
        return self.status == 0 or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class Dropped:
    """A write vea refused for good: resending it cannot succeed. Log it."""

    path: str
    payload: dict[str, Any]
    status: int
    error: dict[str, Any] | None


class VeaClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        outbox: str | os.PathLike[str],
        decision_deadline_s: float = DECISION_DEADLINE_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.outbox = Path(outbox)
        self.decision_deadline_s = decision_deadline_s
        self._outbox_lock = threading.Lock()

    # ----------------------------------------------------------------- decisions
    def decide(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The decision for a contact, or None (show no hint) when vea cannot answer
        within the deadline. A 4xx means the body is wrong: it raises, since retrying
        cannot help and the integration needs fixing."""
        deadline = time.monotonic() + self.decision_deadline_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            answer = self._post("/v1/decisions", body, timeout=left)
            if answer.status in (200, 201):
                return answer.body
            if not answer.retryable:
                raise ValueError(f"vea refused the decision request: {answer.body}")
            pause = min(answer.retry_after_s or 0.05, 0.05)
            if time.monotonic() + pause >= deadline:
                return None
            time.sleep(pause)

    # -------------------------------------------------------------------- writes
    def record_outcome(self, decision: dict[str, Any], outcome: dict[str, Any]) -> Dropped | None:
        """Send the outcome at wrap-up; kept in the outbox while vea is unavailable.
        None when stored or kept; a ``Dropped`` when vea refused it for good."""
        if not decision.get("stored", True):
            return None  # vea never stored this decision: nothing to attach it to
        return self._write(f"/v1/decisions/{decision['decision_id']}/outcome", outcome)

    def record_survey(self, decision_id: str, answers: dict[str, Any]) -> Dropped | None:
        """Send survey answers (VES, CSAT, NPS, CES), with the outcome's guarantees."""
        return self._write(f"/v1/decisions/{decision_id}/survey", answers)

    def flush(self) -> list[Dropped]:
        """Send what the outbox holds, oldest first. Posts vea still cannot take stay in
        it, in order; refused ones are returned. Stops at the first post vea cannot take
        (it is down again: the rest would wait the same)."""
        with self._outbox_lock:
            pending = self._read_outbox()
            dropped: list[Dropped] = []
            for position, (path, payload) in enumerate(pending):
                answer = self._post(path, payload, timeout=5.0)
                if answer.retryable:
                    self._write_outbox(pending[position:])
                    return dropped
                if answer.status >= 400:
                    dropped.append(Dropped(path, payload, answer.status, answer.body))
            self._write_outbox([])
            return dropped

    def pending(self) -> int:
        """Posts waiting in the outbox."""
        with self._outbox_lock:
            return len(self._read_outbox())

    def _write(self, path: str, payload: dict[str, Any]) -> Dropped | None:
        for attempt in range(WRITE_ATTEMPTS):
            answer = self._post(path, payload, timeout=5.0)
            if not answer.retryable:
                if answer.status >= 400:
                    return Dropped(path, payload, answer.status, answer.body)
                return None
            if attempt + 1 < WRITE_ATTEMPTS:
                time.sleep(min(answer.retry_after_s or 0.2 * 2**attempt, MAX_WRITE_PAUSE_S))
        with self._outbox_lock, self.outbox.open("a", encoding="utf-8") as file:
            file.write(json.dumps({"path": path, "payload": payload}) + "\n")
            file.flush()
            os.fsync(file.fileno())  # kept means kept: the desktop may crash next
        return None

    def _read_outbox(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.outbox.exists():
            return []
        entries = []
        for line in self.outbox.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                entries.append((entry["path"], entry["payload"]))
        return entries

    def _write_outbox(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        # Written aside and renamed: a crash mid-write leaves the old outbox whole.
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.outbox.parent, prefix=".outbox-")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            for path, payload in entries:
                file.write(json.dumps({"path": path, "payload": payload}) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.outbox)

    # ---------------------------------------------------------------------- HTTP
    def _post(self, path: str, body: dict[str, Any], timeout: float) -> Answer:
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return Answer(response.status, json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as error:
            try:
                content = json.loads(error.read() or b"null")
            except ValueError:  # a proxy's HTML page, not vea's JSON error
                content = None
            return Answer(error.code, content, _seconds(error.headers.get("Retry-After")))
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError):
            return Answer(0, None)


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:  # an HTTP date: vea sends seconds, a proxy might not
        return None
