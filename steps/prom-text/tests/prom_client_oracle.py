"""Differential oracle for tests/differential.rs: parses each body with prometheus_client.

stdin: a JSON list of strings (bodies). stdout: {"version": ..., "results": [...]} with, per
body, either {"ok": false, "error": "..."} or {"ok": true, "samples": [[name, [[label, value],
...], repr(float(value)), repr(timestamp) or null], ...], "families": [[name, type, help], ...]}.
Floats are sent as Python reprs ("nan", "inf", "1e+300") since JSON has no NaN or infinities.
"""

import json
import sys
from importlib.metadata import version

from prometheus_client.parser import text_string_to_metric_families


def parse(text):
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError, and others on odd input
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    samples = []
    for f in families:
        for s in f.samples:
            ts = None if s.timestamp is None else repr(float(s.timestamp))
            samples.append([s.name, [[k, v] for k, v in s.labels.items()], repr(float(s.value)), ts])
    return {
        "ok": True,
        "samples": samples,
        "families": [[f.name, f.type, f.documentation] for f in families],
    }


def main():
    bodies = json.load(sys.stdin)
    out = {"version": version("prometheus_client"), "results": [parse(b) for b in bodies]}
    json.dump(out, sys.stdout)


main()
