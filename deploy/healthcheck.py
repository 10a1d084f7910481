"""Health probe of the web role: GET /health, or the path given (deploy.sh uses /ready), on this
container's gunicorn. Exit 0 on 200, 1 otherwise (Docker's HEALTHCHECK contract).

The Host header is the first usable ALLOWED_HOSTS entry, so the probe passes Django's host
validation without `localhost` having to be allowed. Standard library only: Docker runs it every
30 s and it must be cheap.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe_host(allowed_hosts: str) -> str:
    for entry in (h.strip() for h in allowed_hosts.split(",")):
        if entry and entry != "*":
            return entry.lstrip(".")  # ".example.com" allows example.com itself
    return "localhost"


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/health"
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(  # http on loopback, a path of ours
        f"http://127.0.0.1:{port}{path}",
        headers={"Host": probe_host(os.environ.get("ALLOWED_HOSTS", ""))},
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310  # nosec B310
            body, ok = response.read(2000).decode(errors="replace"), response.status == 200
    except urllib.error.HTTPError as exc:  # /ready answers 503 naming the failing check
        body, ok = exc.read(2000).decode(errors="replace"), False
    except OSError as exc:
        body, ok = str(exc), False
    if not ok or len(argv) > 1:
        print(f"{path}: {body}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
