"""The web process: Daphne serving oms.asgi with the OMS's websocket keep-alive bound.

`python -m oms.web [daphne options]` is `daphne [options] oms.asgi:application` with two
options set from the environment unless given: `--ping-interval` (OMS_WS_PING_INTERVAL, default
10 s) and `--ping-timeout` (OMS_WS_PING_TIMEOUT, default 10 s).

Why they matter: Daphne writes every frame a consumer sends straight into the socket's
buffer, without limit. A page that stops reading (a laptop asleep, a stalled browser tab, a
client on a link slower than the feed) would have every later feed message buffered for it
in the web process. The ping is queued behind that backlog, so its pong comes back only once
the page has read everything before it: a page more than interval + timeout behind (20 s of
feed with the defaults) is dropped, its buffer freed, and on reconnect it resumes from the
feed's history or takes a snapshot. Daphne's own defaults (20 + 30 s) allow 50 s of feed.

The application is loaded before Daphne starts, and what loading made is frozen out of the
garbage collector's full walks (oms.runtime.loaded_objects_freeze).
"""

from __future__ import annotations

import os
import sys

APPLICATION = "oms.asgi:application"


def daphne_argv(args: list[str]) -> list[str]:
    """Daphne's arguments: `args` plus the keep-alive bound and the application, each unless
    `args` already names it."""
    argv = list(args)
    for option, variable in (
        ("--ping-interval", "OMS_WS_PING_INTERVAL"),
        ("--ping-timeout", "OMS_WS_PING_TIMEOUT"),
    ):
        if not any(a == option or a.startswith(option + "=") for a in argv):
            argv += [option, str(int(os.environ.get(variable) or 10))]
    if APPLICATION not in argv:
        argv.append(APPLICATION)
    return argv


def main(args: list[str]) -> None:
    from daphne.cli import CommandLineInterface
    from django.urls import get_resolver

    # Load the application, every view and the URL patterns before the first request, and
    # keep them out of the garbage collector's full walks (oms.runtime); Daphne then finds
    # the module already imported.
    import oms.asgi  # noqa: F401
    from oms.runtime import loaded_objects_freeze

    get_resolver().url_patterns  # noqa: B018
    loaded_objects_freeze()
    CommandLineInterface().run(daphne_argv(args))


if __name__ == "__main__":
    main(sys.argv[1:])
