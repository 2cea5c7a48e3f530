"""Coverage-guided fuzzing (atheris, libFuzzer) of what an unauthenticated caller can reach: the verifier and
the parser. Only planned exceptions (BridgeError subclasses, each with its HTTP answer) may escape.

    mkdir -p /tmp/corpus && cp events/payloads/*.json /tmp/corpus/     # seed it with the sample bodies
    .venv/bin/python fuzz/fuzz_webhook.py -max_total_time=300 /tmp/corpus  # -help=1 lists libFuzzer's flags

tests/test_fuzz.py runs it for 15 s in CI.

Each input drives one of three shapes, chosen by its first byte:
- raw bytes as the body, against the signature check and then the parser and the selection policy;
- the sample P1 resolve with one field (picked and filled by the fuzzer) replaced, so that the fuzzer reaches
  deep into incident reading instead of stopping at "not JSON";
- a signature header of fuzzed entries, with or without the body's real `v1=` signature among them.

Besides "no unplanned exception", the verifier is checked against a plain oracle: it must accept a header
exactly when one of its comma-separated entries, stripped, is `v1=` and the body's HMAC-SHA256 hex.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any

import atheris
from json_paths import paths  # beside this file: the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "handler"))

# Heavy dependencies first, uninstrumented; only the bridge's own code is instrumented for coverage.
import aws_lambda_powertools.utilities.parameters  # noqa: E402, F401

with atheris.instrument_imports(include=["bridge"]):
    from bridge.config import Settings
    from bridge.credentials import Credentials
    from bridge.errors import BridgeError
    from bridge.webhook.event import parse_event
    from bridge.webhook.policy import Delivery, Ignored, select
    from bridge.webhook.signature import authenticate, signature_matches

SECRET = "pd-test-signing-secret"  # noqa: S105 - the published test secret (scripts/make_events.py)
HOOK_SECRET = "fuzz-webhook-secret"  # noqa: S105 - a test value
SETTINGS = Settings.from_env({"TABLE_NAME": "ledger"})  # every other setting at its default
CREDENTIALS = Credentials(devin_api_key="k", devin_org_id="o", signing_secrets=(SECRET,))
BOTH_SCHEMES = Credentials(
    devin_api_key="k", devin_org_id="o", signing_secrets=(SECRET,), webhook_secrets=(HOOK_SECRET,)
)
SAMPLE = json.loads((ROOT / "events" / "payloads" / "incident-resolved-p1.json").read_text(encoding="utf-8"))


PATHS = paths(SAMPLE)
# Entry prefixes a verifier might trip over; the fuzzer fills in the rest of each entry.
PREFIXES = ["v1=", " v1=", "v1= ", "V1=", "v1", "v2=", "sha256=", "", " "]


def _hex(body: bytes) -> str:
    return hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = fdp.ConsumeIntInRange(0, 7 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 24))  # up to 192-bit integers, signed
    if kind == 3:
        return fdp.ConsumeRegularFloat()
    if kind in (4, 5):
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 64))
    if kind == 6:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {fdp.ConsumeUnicode(8): _value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}


def _mutated_sample(fdp: atheris.FuzzedDataProvider) -> bytes:
    document: Any = json.loads(json.dumps(SAMPLE))
    path = fdp.PickValueInList(PATHS)
    value = _value(fdp)
    if not path:
        document = value
    else:
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    return json.dumps(document).encode()


def check_verifier(body: bytes, header: str) -> None:
    """signature_matches agrees with the oracle, and authenticate only ever raises a planned error."""
    expected = any(entry.strip() == f"v1={_hex(body)}" for entry in header.split(","))
    if signature_matches(body, header, (SECRET,)) != expected:
        raise AssertionError(f"signature_matches disagrees with the oracle for header {header!r}")
    for credentials, headers in (
        (CREDENTIALS, {"x-pagerduty-signature": header}),
        (BOTH_SCHEMES, {"x-pagerduty-signature": header, "x-webhook-secret": header}),
    ):
        try:
            authenticate(body, headers, credentials)
        except BridgeError:
            continue
        if not expected:
            raise AssertionError(f"authenticated without a valid signature: {header!r}")


def check_parser(body: bytes) -> None:
    """parse_event + select either answer (a Delivery or Ignored) or raise a planned error."""
    try:
        selected = select(parse_event(body), SETTINGS)
    except BridgeError:
        return
    if not isinstance(selected, Delivery | Ignored):
        raise AssertionError(f"select returned {selected!r}")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    shape = fdp.ConsumeIntInRange(0, 2)
    if shape == 0:
        header = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 256))
        body = fdp.ConsumeBytes(fdp.remaining_bytes())
    elif shape == 1:
        body = _mutated_sample(fdp)
        header = f"v1={_hex(body)}" if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(80)
    else:
        body = json.dumps(SAMPLE).encode()
        count = fdp.ConsumeIntInRange(0, 6)
        entries = [
            fdp.PickValueInList(PREFIXES) + fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 70))
            for _ in range(count)
        ]
        if fdp.ConsumeBool():
            pad = " " * fdp.ConsumeIntInRange(0, 2)
            entries.insert(fdp.ConsumeIntInRange(0, len(entries)), f"{pad}v1={_hex(body)}{pad}")
        header = ",".join(entries)
    check_verifier(body, header)
    check_parser(body)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
