"""Sketch generators: imagine the state after a thought.

``SketchGenerator`` is the protocol the reasoning loop calls; ``OracleSketcher`` (perfect
imagination from the simulator) and ``BlankSketcher`` (text-only chains) are reference components.
"""
from imagegen.base import BlankSketcher, OracleSketcher, SketchGenerator, check_sketch_inputs

__all__ = ["SketchGenerator", "OracleSketcher", "BlankSketcher", "check_sketch_inputs"]
