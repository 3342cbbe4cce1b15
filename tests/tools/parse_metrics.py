#!/usr/bin/env python3
"""Parses OpenMetrics text on stdin with prometheus_client's parser and prints every sample as
one JSON object per line: {"family", "type", "name", "labels", "value"}. The parser raises on
any deviation from the format, and then this exits non-zero."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({"family": family.name, "type": family.type, "name": sample.name,
                          "labels": sample.labels, "value": sample.value}))
