"""Sends a PagerDuty payload signed exactly as PagerDuty v3 signs it, to the local stack or a deployed WebhookUrl.

    python -m local.send PAYLOAD_FILE|- [--url URL] [--secret S] [--second-secret S2]
                         [--webhook-secret W] [--webhook-id ID]

Without --url it posts to the running local stack (scripts/local; the one started last when several run, which it
says), or to http://127.0.0.1:3000/pagerduty when none says it runs.

The file's exact bytes are sent and signed (HMAC-SHA256, hex, `X-PagerDuty-Signature: v1=<hmac>`, a second
`v1=` entry with --second-secret, as PagerDuty sends during a secret rotation), with the headers PagerDuty
adds. It prints the HTTP status and the answer, and exits 0 on a 2xx, 1 on any other status, and 2 on a usage
error or when the URL cannot be reached. The secret defaults to $PAGERDUTY_SIGNING_SECRET, else the local
stack's test secret. Standard library only, so it runs anywhere Python does.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

from scripts.make_events import TEST_SIGNING_SECRET, sign

DEFAULT_URL = "http://127.0.0.1:3000/pagerduty"
USER_AGENT = "PagerDuty-Webhook/V3.0"
# PagerDuty gives up on a delivery after 5 s; waiting a little longer shows a slow answer instead of hiding it.
DEFAULT_TIMEOUT_SECONDS = 10.0


class SendError(Exception):
    """The request could not be made or got no HTTP answer; the message is one line meant for a person."""


def signature_header(body: bytes, secrets: Sequence[str]) -> str:
    """X-PagerDuty-Signature for `body`: one `v1=` entry per secret, comma-separated, as PagerDuty sends them."""
    return ",".join(sign(body, secret) for secret in secrets)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def send(
    body: bytes,
    url: str = DEFAULT_URL,
    secrets: Sequence[str] = (TEST_SIGNING_SECRET,),
    *,
    webhook_secret: str | None = None,
    webhook_id: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> tuple[int, dict[str, str], bytes]:
    """POST `body` signed with `secrets` (none: unsigned); returns (status, headers lowercased, answer body).

    Any HTTP answer is returned, whatever its status. SendError means there was none (refused, timed out,
    not a URL).
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise SendError(f"not an http(s) URL: {url}")
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Id": webhook_id or str(uuid.uuid4()),
    }
    if secrets:
        all_headers["X-PagerDuty-Signature"] = signature_header(body, secrets)
    if webhook_secret is not None:
        all_headers["X-Webhook-Secret"] = webhook_secret
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=body, headers=all_headers, method="POST")  # noqa: S310 - http(s) only
    # A proxy from the environment must not capture loopback; remote URLs keep the user's proxy settings.
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(url) else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _lower(error.headers.items()), error.read()
    except urllib.error.URLError as error:
        raise SendError(f"cannot reach {url}: {getattr(error.reason, 'strerror', None) or error.reason}") from None
    except TimeoutError:
        raise SendError(f"no answer from {url} within {timeout:g} s") from None
    except OSError as error:
        raise SendError(f"cannot reach {url}: {error.strerror or error}") from None


def local_stack_url() -> str:
    """The webhook of the running local stack (the one started last, said on stderr when several run), else
    DEFAULT_URL: where scripts/local listens unless told otherwise."""
    from local.stack import StackError, find_stack

    try:
        outputs, note = find_stack()
    except StackError:
        return DEFAULT_URL
    if note:
        print(f"note: {note}", file=sys.stderr)
    return outputs.get("WebhookUrl") or DEFAULT_URL


def _lower(items: object) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in items}  # type: ignore[attr-defined]


def _render(status: int, headers: dict[str, str], body: bytes) -> str:
    lines = [f"HTTP {status}"]
    if "retry-after" in headers:
        lines[0] += f" (Retry-After: {headers['retry-after']})"
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):  # not JSON: shown as it came
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    if text:
        lines.append(text)
    return "\n".join(lines)


def _read_payload(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as file:
        return file.read()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line and exit 2, like argparse, without repeating the whole usage.
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m local.send", description=__doc__.splitlines()[0])
    parser.add_argument("payload", metavar="PAYLOAD_FILE", help="the PagerDuty body to send, or - for stdin")
    parser.add_argument(
        "--url", help=f"where to POST it (default: the running local stack's webhook, else {DEFAULT_URL})"
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get("PAGERDUTY_SIGNING_SECRET") or TEST_SIGNING_SECRET,
        help="signing secret (default $PAGERDUTY_SIGNING_SECRET, else the local test secret)",
    )
    parser.add_argument("--second-secret", help="add a second v1= signature, as during a secret rotation")
    parser.add_argument("--unsigned", action="store_true", help="send no X-PagerDuty-Signature at all")
    parser.add_argument("--webhook-secret", help="send this X-Webhook-Secret header")
    parser.add_argument("--webhook-id", help="X-Webhook-Id (default: a new uuid4, as each delivery has)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait")
    args = parser.parse_args(argv)

    try:
        body = _read_payload(args.payload)
    except OSError as error:
        print(f"error: cannot read {args.payload}: {error.strerror or error}", file=sys.stderr)
        return 2
    secrets = [] if args.unsigned else [s for s in (args.secret, args.second_secret) if s]
    try:
        status, headers, answer = send(
            body,
            args.url or local_stack_url(),
            secrets,
            webhook_secret=args.webhook_secret,
            webhook_id=args.webhook_id,
            timeout=args.timeout,
        )
    except SendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(_render(status, headers, answer))
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:
        # The reader went away (`| head`): nothing left to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
