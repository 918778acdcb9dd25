"""Helpers shared by the tests that compare run directories."""
import json

from vot.chain import TIMING_FIELDS


def without_timing(record: dict) -> dict:
    """A results.jsonl line minus the timings (the only thing a rerun may change)."""
    record = json.loads(json.dumps(record))
    for compute in [record["chain"]["compute"]] + ([record["result"]["compute"]] if record["result"] is not None else []):
        for name in TIMING_FIELDS:
            compute.pop(name, None)
    return record
