"""Runs the scheduled follow-up of a local stack now, through its local-only route, and prints the run's report.

    python -m local.follow_up [--url URL]

The deployed follow-up (FollowUpFunction) runs on its EventBridge schedule; the local stack has no scheduler, so
it offers `POST /_local/follow-up` instead, which invokes handler/follow_up.py once in its own warm container and
answers the handler's report: `{"followed", "updated", "failed", "stopped", "left", "off"}`, `off` true (and
every count 0) when no PagerDuty key is in Parameter Store. API Gateway has no such route: this works against a
local stack only. Exits 0 on a 200, 1 on any other status, 2 when the URL cannot be reached.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:3000/_local/follow-up"
# The follow-up's Timeout in template.yaml is 120 s; a run that waits for another one can take twice that.
TIMEOUT_SECONDS = 250.0


def run(url: str = DEFAULT_URL, timeout: float = TIMEOUT_SECONDS) -> tuple[int, bytes]:
    """(HTTP status, body) of one follow-up run; raises OSError when the stack cannot be reached."""
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 - the URL is the user's
    # The route exists on a local stack only: a proxy from the environment must not capture it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.follow_up", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the stack's follow-up route (default {DEFAULT_URL})")
    args = parser.parse_args(argv)
    try:
        status, body = run(args.url)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        print(f"error: cannot reach {args.url}: {reason} (is scripts/local running?)", file=sys.stderr)
        return 2
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):  # not JSON: shown as it came
        text = json.dumps(json.loads(text), indent=2)
    print(f"HTTP {status}\n{text}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
