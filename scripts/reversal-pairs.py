#!/usr/bin/env python3
"""Writes the demos' word-reversal task: 20,000 {"prompt": "abc=", "completion": "cba"} lines (seeded). Usage: reversal-pairs.py OUT.jsonl"""
import json
import random
import sys

random.seed(7)
with open(sys.argv[1], "w") as f:
    for _ in range(20000):
        word = "".join(random.choice("abcdefgh") for _ in range(random.randint(2, 5)))
        f.write(json.dumps({"prompt": word + "=", "completion": word[::-1]}) + "\n")
