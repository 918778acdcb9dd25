"""Helpers shared by the tests that compare run directories."""
import json


def without_timing(record: dict) -> dict:
    """A results.jsonl line minus the wall-clock seconds (the only thing a rerun may change)."""
    record = json.loads(json.dumps(record))
    record["chain"]["compute"].pop("wall_seconds")
    if record["result"] is not None:
        record["result"]["compute"].pop("wall_seconds")
    return record
