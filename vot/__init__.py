"""vot: multimodal visualization-of-thought reasoning.

Heavy parts (torch models) are imported lazily so that ``vot tasks`` and ``vot data`` start fast.
"""
__version__ = "0.1.0"
