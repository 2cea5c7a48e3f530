"""Print the exact prompt (and the messages) Devin's stand-in received for an incident, from a running local stack.

    .venv/bin/python -m local.prompt [INCIDENT_ID] [--port P] [--messages]

Without INCIDENT_ID: the last session's. The stand-in keeps every request in scripts/local's process; this asks it
over its own route (GET /_standin/prompts, not part of Devin's API). Exit status 0 printed, 1 no such session, 2 no
running local stack or no stand-in.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from typing import Any


def sessions(devin_url: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"{devin_url.rstrip('/')}/_standin/prompts")  # noqa: S310 - the stack's URL
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    with opener.open(request, timeout=10) as answer:
        return list(json.loads(answer.read())["sessions"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.prompt", description=__doc__.splitlines()[0])
    parser.add_argument("incident_id", nargs="?", help="the incident (default: the last session's)")
    parser.add_argument("--port", type=int, help="the local stack whose webhook listens on PORT")
    parser.add_argument("--messages", action="store_true", help="also print the messages the session received")
    args = parser.parse_args(argv)

    from local.stack import StackError, find_stack

    try:
        outputs, note = find_stack(args.port)
        found = sessions(outputs.get("DevinApiBaseUrl", ""))
    except (StackError, OSError, ValueError, KeyError) as error:
        print(f"error: {error} (is scripts/local running, with Devin's stand-in?)", file=sys.stderr)
        return 2
    if note:
        print(f"note: {note}", file=sys.stderr)
    tag = f"pagerduty-incident:{args.incident_id}" if args.incident_id else None
    chosen = [session for session in found if tag is None or tag in session["tags"]]
    if not chosen:
        print(f"no session for incident {args.incident_id}" if tag else "no session yet", file=sys.stderr)
        return 1
    session = chosen[-1]
    print(session["prompt"])
    if args.messages:
        for number, message in enumerate(session["messages"], 1):
            print(f"\n--- message {number} ---\n{message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
