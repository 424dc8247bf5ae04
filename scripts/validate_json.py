#!/usr/bin/env python3
"""Validates JSON documents against a JSON Schema (2020-12), with format checks.

Usage: validate_json.py SCHEMA < documents   (one JSON document per line)
Prints one line per document: "ok" or "invalid: <first error>". Exit status 0 if all are valid.
"""
import json
import sys

from jsonschema import Draft202012Validator, FormatChecker


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        schema = json.load(handle)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    failures = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        errors = sorted(validator.iter_errors(json.loads(line)), key=lambda error: list(error.path))
        if errors:
            failures += 1
            path = "/".join(str(part) for part in errors[0].path)
            print(f"invalid: {path}: {errors[0].message}")
        else:
            print("ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
