"""The well-behaved user: uploads by each route, retries as told, and keeps every answer.

A 503 or 429 with Retry-After is retried after that delay; a timeout or a connection error
(no answer) after a short backoff; anything else is final. Every retry of one upload carries
the same `Idempotency-Key`, as a client does that wants one image per upload whatever the
network did. The client gives up after MAX_ATTEMPTS: an upload then ends *refused* (every
attempt answered, none 2xx) or *unanswered* (some attempt got no answer at all).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from imgpipe.core.keys import image_id_for
from soak.plan import Upload

MAX_ATTEMPTS = 3
# Below the server's 10 s wait for a locked SQLite database: a client gives up on a request
# that a locked database holds, and retries it; the case an Idempotency-Key is for.
TIMEOUT_S = 8.0
RETRY_AFTER_CAP_S = 30.0
NO_ANSWER_BACKOFF_S = (2.0, 4.0, 4.0)  # spans a restart of the server
DROP_FOLDER = "uploads"
STAGING = "soak-staging"  # where a drop is written before its rename into uploads/


@dataclass(frozen=True)
class Attempt:
    answered: bool
    ok: bool
    what: str  # the status ("202", "503"), or why there was no answer ("ReadTimeout")


@dataclass
class Outcome:
    upload: Upload
    phase: str
    attempts: list[Attempt] = field(default_factory=list)
    image_id: str | None = None

    @property
    def accepted(self) -> bool:
        return any(a.ok for a in self.attempts)

    @property
    def refused(self) -> bool:
        return bool(self.attempts) and all(a.answered and not a.ok for a in self.attempts)

    @property
    def unanswered(self) -> bool:
        return not self.accepted and not self.refused


class AnswerLog:
    """Every answer the server gave, by route and status; the 5xx that break the rules."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, int]] = Counter()
        self.bad_5xx: list[str] = []
        self.bad_5xx_count = 0
        self._lock = threading.Lock()

    def record(self, route: str, response: httpx.Response) -> None:
        status = response.status_code
        with self._lock:
            self.counts[route, status] += 1
            # A 503 with Retry-After is a refusal the client can act on; /health's 503 is
            # how it says degraded. Any other 5xx is a server error a user should never see.
            allowed = status == 503 and ("retry-after" in response.headers or route == "health")
            if status >= 500 and not allowed:
                self.bad_5xx_count += 1
                if len(self.bad_5xx) < 5:
                    self.bad_5xx.append(f"{route} {status} {response.text[:160]!r}")


class Uploader:
    """Thread-safe: each thread keeps its own HTTP connection pool."""

    def __init__(self, url: str, data_dir: Path, seed: int, log: AnswerLog) -> None:
        self.url = url
        self.data_dir = data_dir
        self.seed = seed
        self.log = log
        self.stopping = threading.Event()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            timeout = httpx.Timeout(TIMEOUT_S, connect=3.0)
            client = httpx.Client(base_url=self.url, timeout=timeout)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()

    def upload(self, upload: Upload, phase: str) -> Outcome:
        outcome = Outcome(upload, phase)
        if upload.route == "drop":
            self._drop(upload, outcome)
        elif upload.route == "signed":
            self._signed(upload, outcome)
        else:
            self._multipart(upload, outcome)
        return outcome

    def _key(self, upload: Upload) -> dict[str, str]:
        return {"Idempotency-Key": f"soak-{self.seed}-{upload.seq}"}

    def _multipart(self, upload: Upload, outcome: Outcome) -> None:
        files = {"file": (upload.name, upload.data, upload.content_type)}
        body = self._send(
            outcome,
            "POST /images",
            lambda: self.client().post("/images", files=files, headers=self._key(upload)),
        )
        if body is not None:
            outcome.image_id = str(body["imageId"])

    def _signed(self, upload: Upload, outcome: Outcome) -> None:
        data = upload.data
        request = {"filename": upload.name, "contentType": upload.content_type, "size": len(data)}
        ticket_attempts = Outcome(upload, outcome.phase)
        ticket = self._send(
            ticket_attempts,
            "POST /uploads",
            lambda: self.client().post("/uploads", json=request, headers=self._key(upload)),
        )
        if ticket is None:  # nothing was stored: the outcome is the ticket's
            outcome.attempts = ticket_attempts.attempts
            return
        headers = {**ticket["headers"], **self._key(upload)}
        if self._send(
            outcome,
            "PUT /upload",
            lambda: self.client().request(
                ticket["method"], ticket["uploadUrl"], content=data, headers=headers
            ),
        ):
            outcome.image_id = str(ticket["imageId"])

    def _drop(self, upload: Upload, outcome: Outcome) -> None:
        """Written beside the folder, then renamed into it: the watcher sees a whole file."""
        staging = self.data_dir / STAGING / upload.name
        target = self.data_dir / DROP_FOLDER / upload.name
        try:
            staging.parent.mkdir(parents=True, exist_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.write_bytes(upload.data)
            os.replace(staging, target)
        except OSError as exc:  # a full disk: the user sees the copy fail
            staging.unlink(missing_ok=True)
            outcome.attempts.append(Attempt(True, False, exc.strerror or type(exc).__name__))
            return
        outcome.attempts.append(Attempt(True, True, "dropped"))
        outcome.image_id = image_id_for(f"{DROP_FOLDER}/{upload.name}")

    def _send(
        self, outcome: Outcome, route: str, send: Callable[[], httpx.Response]
    ) -> dict[str, Any] | None:
        """Send with retries; the 2xx answer's JSON body, or None if none came."""
        for n in range(MAX_ATTEMPTS):
            if n and self.stopping.is_set():
                break
            try:
                response = send()
            except httpx.TransportError as exc:  # timeouts included: no answer
                outcome.attempts.append(Attempt(False, False, type(exc).__name__))
                self.stopping.wait(NO_ANSWER_BACKOFF_S[n])
                continue
            self.log.record(route, response)
            ok = response.is_success
            outcome.attempts.append(Attempt(True, ok, str(response.status_code)))
            if ok:
                body: dict[str, Any] = response.json()
                return body
            retry_after = response.headers.get("retry-after", "")
            if response.status_code not in (429, 503) or not retry_after.isdigit():
                return None
            self.stopping.wait(min(float(retry_after), RETRY_AFTER_CAP_S))
        return None


class Reader:
    """What a user reads back: records, /stats and /health; reads retry like uploads do."""

    def __init__(self, url: str, log: AnswerLog) -> None:
        self.log = log
        self.http = httpx.Client(base_url=url, timeout=httpx.Timeout(TIMEOUT_S, connect=3.0))

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, route: str, **params: Any) -> httpx.Response | None:
        """The answer to a GET (None if none came after MAX_ATTEMPTS)."""
        for n in range(MAX_ATTEMPTS):
            try:
                response = self.http.get(path, params=params)
            except httpx.TransportError:
                time.sleep(NO_ANSWER_BACKOFF_S[n])
                continue
            self.log.record(route, response)
            retry_after = response.headers.get("retry-after", "")
            if response.status_code in (429, 503) and retry_after.isdigit():
                time.sleep(min(float(retry_after), RETRY_AFTER_CAP_S))
                continue
            return response
        return None

    def health(self) -> str:
        """/health's answer in a few words: `200 ok`, `503 degraded`, `no answer`."""
        try:
            response = self.http.get("/health", timeout=2.0)
        except httpx.TransportError as exc:
            return f"no answer ({type(exc).__name__})"
        self.log.record("health", response)
        try:
            status = response.json().get("status", "?")
        except ValueError:
            status = "not JSON"
        return f"{response.status_code} {status}"

    def stats(self) -> dict[str, Any] | None:
        response = self.get("/stats", "GET /stats")
        if response is None or response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body

    def exists(self, image_id: str) -> bool:
        response = self.get(f"/images/{image_id}", "GET /images/{id}")
        return response is not None and response.status_code == 200

    def all_records(self) -> list[dict[str, Any]]:
        """Every record, page by page."""
        records: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = self.get("/images", "GET /images", **params)
            if response is None or response.status_code != 200:
                raise RuntimeError(f"could not list the records: {response}")
            page = response.json()
            records.extend(page["items"])
            cursor = page.get("nextCursor")
            if not cursor:
                return records
