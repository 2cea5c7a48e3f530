"""Coverage-guided fuzzing (atheris, libFuzzer) of what comes back from a session, through the real follow-up
(bridge.follow.follow_up): the real Devin client reading an answer the fuzzer writes, the real PagerDuty client and
note posting (bridge.postmortem) against a recorder, and the ledger kept in memory (what the follow-up writes, as
it would write it to DynamoDB: the ledger's own conditions and leases are tests/test_exactly_once.py's business;
moto would make a run a hundred times slower).

    .venv/bin/python fuzz/fuzz_result.py -max_total_time=300       # -help=1 lists libFuzzer's flags

tests/test_fuzz.py runs it for a bounded time in CI. Each input is one run over two open sessions: the oldest gets a
session answer built by the fuzzer (its structured_output a valid result with one field replaced, or any value, and
its pull request links), carrying the bridge's own secrets in forms the fuzzer picks, markers, look-alikes and links;
the one behind it is an ordinary done session with a valid result. After the run:

- no posted note carries a marker but its own, on its last line;
- no posted note and no stored item carries one of the bridge's secrets in any form (as it is, split by anything,
  reversed, base64-encoded), checked by an oracle of this file's own, not the bridge's scrubber;
- every link in a posted note or the stored item's links is an https link on an allowed host;
- the session behind the hostile one was followed and got its summary note.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

import atheris
from json_paths import paths  # beside this file: the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "handler"))
sys.path.insert(0, str(ROOT))
for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_LOG_LEVEL": "CRITICAL",
}.items():
    os.environ[name] = value
os.environ.pop("AWS_ENDPOINT_URL", None)

with atheris.instrument_imports(include=["bridge"]):
    from bridge.devin.client import DevinClient
    from bridge.follow import follow_up
    from bridge.ledger import Lease
    from bridge.pagerduty.client import PagerDutyClient
    from bridge.pagerduty.notes import MARKED, PULL_REQUEST
    from bridge.postmortem import NoteWriter
    from bridge.result.links import CODE_HOSTS, LinkPolicy
    from bridge.scrub import Scrubber

from tests.support.results import valid_result  # noqa: E402

DEVIN_KEY = "cog_fuzz_key_0123456789abcdefghij"  # noqa: S105 - test values
PAGERDUTY_KEY = "u+FuzzKEY0123456789x"  # noqa: S105
SIGNING = "whsec_fuzz_signing_secret_ABCDEF012345"  # noqa: S105
SECRETS = (DEVIN_KEY, PAGERDUTY_KEY, SIGNING)
HOSTILE, BEHIND = "QFUZZ0000001", "QFUZZ0000002"
SESSION_URL = "https://app.devin.ai/sessions/devin-{}"
SEEN_LINK = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]{0,30}://|www\.)[^\s<>\"'`]+")
PIECES = [
    "[pagerduty-postmortem:summary]",
    "[pagerduty-postmortem:pr https://github.com/a/b/pull/1]",
    "［ＰａｇｅｒＤｕｔｙ－Ｐｏｓｔｍｏｒｔｅｍ：session］",
    "\n[pagerduty-postmortem:waiting 1]",
    "https://evil.example/login",
    "https://evil.example/acme/checkout/pull/7",
    "https://github.com.evil.example/a/b/pull/3",
    "http://github.com/a/b/pull/2",
    "www.evil.example",
    "javascript://x",
    "\u200b",
    "\u00ad",
    "\ud800",
    "\n",
    "ghp_" + "Q" * 36,
    "AKIAABCDEFGHIJKLMNOP",
]


def _forms(fdp: atheris.FuzzedDataProvider) -> str:
    secret = fdp.PickValueInList(list(SECRETS))
    kind = fdp.ConsumeIntInRange(0, 5)
    if kind == 0:
        return secret
    if kind == 1:
        cut = fdp.ConsumeIntInRange(1, len(secret) - 1)
        return secret[:cut] + fdp.PickValueInList(["\u200b", "\u00ad", " ", "-", "\n", "\u2060"]) + secret[cut:]
    if kind == 2:
        return secret[::-1]
    if kind == 3:
        return base64.b64encode(fdp.ConsumeBytes(2) + secret.encode()).decode()
    if kind == 4:
        return " ".join(secret)
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in secret)


def _text(fdp: atheris.FuzzedDataProvider) -> str:
    parts = []
    for _ in range(fdp.ConsumeIntInRange(0, 5)):
        choice = fdp.ConsumeIntInRange(0, 3)
        if choice == 0:
            parts.append(_forms(fdp))
        elif choice == 1:
            parts.append(fdp.PickValueInList(PIECES))
        else:
            parts.append(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 24)))
    return "".join(parts)


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = fdp.ConsumeIntInRange(0, 6 if depth < 4 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeInt(4)
    if kind in (2, 3, 4):
        return _text(fdp)
    if kind == 5:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {_text(fdp)[:20]: _value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}


RESULT = valid_result()
RESULT_PATHS = [path for path in paths(RESULT) if path]


def _output(fdp: atheris.FuzzedDataProvider) -> Any:
    shape = fdp.ConsumeIntInRange(0, 3)
    if shape == 0:
        return _value(fdp)
    result: Any = json.loads(json.dumps(RESULT))
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        path = fdp.PickValueInList(RESULT_PATHS)
        parent = result
        for key in path[:-1]:
            # An earlier change may have replaced a step of the path with a value of another shape.
            if isinstance(parent, dict):
                parent = parent.get(key)
            elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
                parent = parent[key]
            else:
                parent = None
                break
        if isinstance(parent, dict | list):
            with contextlib.suppress(IndexError, TypeError):
                parent[path[-1]] = _value(fdp) if shape == 1 else _text(fdp)
    if shape == 3:
        result["extra"] = _nested(fdp.ConsumeIntInRange(0, 2000))
    return result


def _nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"x": value}
    return value


class _Response:
    def __init__(self, status: int, body: str) -> None:
        self.status_code, self.text, self.headers = status, body, {}

    def json(self) -> Any:
        return json.loads(self.text)


class _Http:
    """A requests.Session stand-in for both clients: Devin answers what the fuzzer wrote; PagerDuty records notes."""

    def __init__(self, sessions: dict[str, str]) -> None:
        self.sessions = sessions
        self.notes: dict[str, list[dict[str, Any]]] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> _Response:
        if "/v3/organizations/" in url:
            return _Response(200, self.sessions[url.rsplit("/", 1)[-1]])
        incident = url.split("/incidents/")[1].split("/")[0]
        notes = self.notes.setdefault(incident, [])
        if method == "POST":
            note = {"id": f"N{len(notes)}", "user": {"id": "PBRIDGE"}, "content": kwargs["json"]["note"]["content"]}
            notes.append(note)
            return _Response(201, json.dumps({"note": note}))
        return _Response(200, json.dumps({"notes": notes}))


def _squashed(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text)
    return "".join(char for char in folded if char.isalnum())


def _leaks(text: str) -> list[str]:
    """The bridge's secrets found in `text` in any form this oracle knows."""
    flat = _squashed(text)
    found = []
    for secret in SECRETS:
        forms = [secret, secret[::-1]]
        for skip in range(3):
            encoded = base64.b64encode(b"\0" * skip + secret.encode()).decode()
            forms.append(encoded[(8 * skip + 5) // 6 : (8 * (skip + len(secret))) // 6])
        found += [form for form in forms if len(_squashed(form)) >= 12 and _squashed(form) in flat]
    return found


LOOK_ALIKE = re.compile(r"pagerduty\W*_*\W*post\W*_*\W*mortem\W*:")


def _check_note(content: str) -> None:
    lines = content.splitlines()
    looking = [line for line in lines if LOOK_ALIKE.search(unicodedata.normalize("NFKC", line).casefold())]
    if looking != lines[-1:] or not re.fullmatch(r"\[pagerduty-postmortem:[a-z_]+[^\]\n]*\]", lines[-1]):
        raise AssertionError(f"a marker, or a look-alike, that is not the note's own: {content!r}")
    for link in SEEN_LINK.findall(content):
        if not (link.startswith("https://app.devin.ai/sessions/") or LinkPolicy().pull_request(link) == link):
            raise AssertionError(f"a link outside the allow-list: {link!r} in {content!r}")


class _MemoryLedger:
    """The ledger calls the follow-up makes, on a dict: every value written is kept as written."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = {item["incident_id"]: item for item in items}

    def open_sessions(self) -> Any:
        followed = [item for item in self.items.values() if item.get("following") == "open"]
        for item in sorted(followed, key=lambda item: item["session_recorded_epoch"]):
            yield copy.deepcopy(item)

    def record_follow(self, incident_id: str, state: Any, *, stop: bool, **kwargs: Any) -> None:
        item = self.items[incident_id]
        item.update(kwargs.get("values") or {})
        item.update(kwargs.get("result") or {})
        if state is not None:
            item.update(session_status=state.status, pull_request_urls=list(state.pull_request_urls))
            if state.status_detail is not None:
                item["session_status_detail"] = state.status_detail
        for name in (*kwargs.get("forget", ()), *(("following",) if stop else ())):
            item.pop(name, None)

    def lease(self, incident_id: str, lease_seconds: float) -> Lease:
        return Lease(incident_id, "token", copy.deepcopy(self.items[incident_id]))

    def note_posted(self, lease: Lease, note: Any, *, release: bool = False, user_id: str | None = None) -> None:
        item = self.items[lease.incident_id]
        if note.kind == PULL_REQUEST:
            item.setdefault("pull_request_notes_posted", set()).add(note.pull_request)
        elif note.kind == MARKED:
            item.setdefault("notes_posted", set()).add(note.marker)
        else:
            item[f"{note.kind}_note_posted_at"] = "2033-05-18T03:33:20Z"
        if note.digest:
            item["summary_digest"] = note.digest
        if user_id:
            item.setdefault("pagerduty_user_id", user_id)

    def note_unconfirmed(self, lease: Lease, marker: str, *, release: bool = False) -> None:
        self.items[lease.incident_id].setdefault("notes_unconfirmed", set()).add(marker)

    def release_lease(self, lease: Lease) -> None:
        pass


def _session(session_id: str, output: Any, pull_requests: list[Any]) -> str:
    return json.dumps(
        {
            "session_id": session_id,
            "url": SESSION_URL.format(session_id),
            "status": "exit",
            "tags": [],
            "org_id": "org-fuzz",
            "created_at": 1,
            "updated_at": 1,
            "acus_consumed": 1,
            "pull_requests": [{"pr_url": url, "pr_state": "open"} for url in pull_requests],
            "structured_output": output,
        }
    )


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    output = _output(fdp)
    links = [
        fdp.PickValueInList(PIECES[:10]) + (_text(fdp)[:10] if fdp.ConsumeBool() else "")
        for _ in range(fdp.ConsumeIntInRange(0, 2))
    ]
    try:
        hostile = _session("devin-hostile", output, links)
    except (ValueError, RecursionError):
        return  # not JSON Devin could send
    http = _Http({"devin-hostile": hostile, "devin-behind": _session("devin-behind", RESULT, [])})
    ledger = _MemoryLedger(
        [
            {
                "incident_id": incident_id,
                "status": "started",
                "event_type": "incident.resolved",
                "session_id": session_id,
                "session_url": SESSION_URL.format(session_id),
                "following": "open",
                "session_recorded_epoch": 2_000_000_000 + epoch,
                "result_schema": "default",
            }
            for epoch, (incident_id, session_id) in enumerate(((HOSTILE, "devin-hostile"), (BEHIND, "devin-behind")))
        ]
    )
    writer = NoteWriter(PagerDutyClient("https://pd.invalid", PAGERDUTY_KEY, http, from_email="b@x.io"), 10)
    report = follow_up(
        ledger=ledger,  # type: ignore[arg-type] - the calls the follow-up makes, in memory
        devin=DevinClient("https://devin.invalid", DEVIN_KEY, "org-fuzz", http),
        notes=writer,
        follow_up_days=7,
        deadline=float("inf"),
        now=lambda: 2_000_000_100.0,
        scrubber=Scrubber(SECRETS),
        links=LinkPolicy.with_hosts(CODE_HOSTS),
    )
    for content in (note["content"] for notes in http.notes.values() for note in notes):
        _check_note(content)
        if leaked := _leaks(content):
            raise AssertionError(f"a secret in a note: {leaked!r} in {content!r}")
    stored = ledger.items[HOSTILE]
    text = json.dumps(stored, default=str, ensure_ascii=False)
    if leaked := _leaks(text):
        raise AssertionError(f"a secret in the ledger: {leaked!r} in {text[:2000]!r}")
    kept = {name: value for name, value in stored.items() if name not in ("notes_posted", "notes_unconfirmed")}
    for link in SEEN_LINK.findall(json.dumps(kept, default=str, ensure_ascii=False)):
        if not (link.startswith("https://app.devin.ai/sessions/") or LinkPolicy().pull_request(link) == link):
            raise AssertionError(f"a link outside the allow-list in the ledger: {link!r}")
    if LOOK_ALIKE.search(unicodedata.normalize("NFKC", json.dumps(kept, ensure_ascii=False, default=str)).casefold()):
        raise AssertionError(f"a marker look-alike in the ledger item: {text[:2000]!r}")
    if not any("Postmortem draft by Devin" in note["content"] for note in http.notes.get(BEHIND, [])):
        raise AssertionError(f"the session behind the hostile one got no summary: {report}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
