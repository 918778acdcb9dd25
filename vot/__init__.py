"""vot: multimodal visualization-of-thought reasoning.

Heavy parts (torch models) are imported lazily so that ``vot tasks`` and ``vot data`` start fast.
"""
__version__ = "0.1.0"


def load(name_or_path, **kwargs):
    """A ready `vot.reasoner.Reasoner` from a shipped bundle (``"maze"``) or a bundle directory.
    See `vot.components.load` and `vot.components.build_reasoner` for the options."""
    from vot.components import load as _load

    return _load(name_or_path, **kwargs)
