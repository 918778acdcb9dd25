"""Loading without clutter: diffusers' and transformers' weight-loading bars and their info and
warning logs are hidden while models load, unless stderr is a terminal."""
from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def quiet_loading(quiet: bool | None = None):
    """Hide loading bars and library logs below ERROR inside the block (``quiet=None``: when
    stderr is not a terminal); the previous settings come back afterwards."""
    quiet = not sys.stderr.isatty() if quiet is None else quiet
    if not quiet:
        yield
        return
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    saved = [(module, module.is_progress_bar_enabled(), module.get_verbosity())
             for module in (diffusers_logging, transformers_logging)]
    for module, _, _ in saved:
        module.disable_progress_bar()
        module.set_verbosity(module.ERROR)
    try:
        yield
    finally:
        for module, bars, verbosity in saved:
            (module.enable_progress_bar if bars else module.disable_progress_bar)()
            module.set_verbosity(verbosity)
