#!/usr/bin/env python3
"""Writes a synthetic stack of storage accounts -> blob containers -> blobs for benchmarks.

Usage: gen_stack.py RESOURCES [--prefix P] [--out FILE]

RESOURCES is rounded down to a multiple of 3: a third storage accounts, a third containers (one per
account) and a third blobs (one per container, inline content). Account names are `<prefix><index>`,
so two stacks on one local cloud need different prefixes (accounts are globally named, as in Azure).
The file goes to FILE (default: stdout).
"""
import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("resources", type=int, help="number of resources (a multiple of 3)")
    parser.add_argument("--prefix", default="sfb", help="account name prefix (lowercase letters)")
    parser.add_argument("--stack", default="bench", help="stack name")
    parser.add_argument("--out", default="-", help="output file (default stdout)")
    args = parser.parse_args()
    groups = args.resources // 3
    if groups < 1:
        parser.error("RESOURCES must be at least 3")
    if not (args.prefix.isascii() and args.prefix.isalpha() and args.prefix.islower()):
        parser.error("--prefix must be lowercase ASCII letters")
    if len(args.prefix) + len(str(groups - 1)) > 24:
        parser.error("--prefix is too long for 24-character account names")
    lines = [
        f"stack: {args.stack}",
        "cloud:",
        "  kind: local",
        "  location: eastus",
        "resources:",
    ]
    for i in range(groups):
        lines += [
            f"  sa{i}:",
            "    type: storage_account",
            f"    name: {args.prefix}{i}",
            "    sku: Standard_LRS",
            f"  c{i}:",
            "    type: blob_container",
            f"    account: ${{sa{i}.name}}",
            "    name: data",
            f"  b{i}:",
            "    type: blob",
            f"    account: ${{sa{i}.name}}",
            f"    container: ${{c{i}.name}}",
            "    name: hello.txt",
            f"    content: hello {i}",
        ]
    text = "\n".join(lines) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
