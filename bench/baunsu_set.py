"""Write a fifth scoring set from the tests of baunsu (a JavaScript bounce detector, MIT): its
real bounce messages and what its own tests expect of them, converted mechanically, without
reading the messages.

    python bench/baunsu_set.py PACKAGE_FOLDER [--out tests/data/bounces-baunsu]

``PACKAGE_FOLDER`` is its unpacked npm package (``npm pack baunsu@0.2.3``, then unpack it). Its
tests pick messages by file name: ``tests/hardBounceTest.js`` expects every ``bounce*`` message
to be a hard bounce (naming no address), ``autoResponseTest.js`` every ``auto*`` one to be no
bounce, ``ordinaryEmailTest.js`` every ``ordinary*`` one to be no bounce. A ``bounce*`` row has
recipient ``*``: scored on every recipient read from it. Others are read for crashes only.
"""
from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

from common import fingerprint, messages_already_in

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "bounces-baunsu"
OTHER_SETS = ("bounces", "bounces-flufl", "bounces-bounceparser", "bounces-bounced")
# File name prefix → (recipient, expected, the test that says so).
BY_PREFIX = {"bounce": ("*", "hard", "hardBounceTest.js: bounced, isHard"),
             "auto": ("", "not-a-bounce", "autoResponseTest.js: not bounced"),
             "ordinary": ("", "not-a-bounce", "ordinaryEmailTest.js: not bounced")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    seen = messages_already_in([ROOT / "tests" / "data" / name for name in OTHER_SETS])
    messages = args.out / "messages"
    messages.mkdir(parents=True, exist_ok=True)
    rows, duplicates = [], 0
    for path in sorted((args.package / "tests" / "emails").glob("*")):
        if fingerprint(path.read_bytes()) in seen:
            duplicates += 1
            continue
        shutil.copyfile(path, messages / path.name)
        prefix = next((p for p in BY_PREFIX if path.name.lower().startswith(p)), None)
        recipient, expected, basis = BY_PREFIX.get(prefix, ("", "unlabelled", "no test of it"))
        rows.append([f"messages/{path.name}", recipient, expected, basis])
    # The package has no licence file; its package.json says "license": "MIT".
    shutil.copyfile(args.package / "package.json", args.out / "package.json.baunsu")
    with open(args.out / "expected.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["file", "recipient", "expected", "basis"])
        writer.writerows(rows)
    print(f"{len(rows)} messages -> {args.out}; {duplicates} left out as already in our sets")


if __name__ == "__main__":
    main()
