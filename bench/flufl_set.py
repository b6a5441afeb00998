"""Write a second, independent scoring set from the test suite of flufl.bounce (the Mailman
project's bounce detector, Apache-2.0): its real bounce messages and the recipients its own test
table expects, converted mechanically, without reading the messages.

    python bench/flufl_set.py SDIST_FOLDER [--out tests/data/bounces-flufl]

``SDIST_FOLDER`` is flufl.bounce's unpacked source distribution (``pip download --no-deps
--no-binary :all: flufl.bounce==6.0.0``, then unpack it). Its table (``tests/test_detectors.py``,
``DETECTORS``) gives, per message, the failed addresses and whether flufl.bounce reads them as a
temporary failure. A temporary failure is a delay warning: ``soft``. A permanent one is not
labelled hard or soft (a full mailbox is "permanent" there too): ``failed``, scored for the
recipient found only. Messages its table expects nothing from are kept for crashes only.
"""
from __future__ import annotations

import argparse
import ast
import csv
import shutil
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces-flufl"


def table(sdist: Path) -> list[tuple[str, str, list[bytes], bool]]:
    """The DETECTORS table of flufl.bounce's tests, read as data (never run)."""
    tree = ast.parse((sdist / "tests" / "test_detectors.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DETECTORS":
            return ast.literal_eval(node.value)
    raise SystemExit("no DETECTORS table in tests/test_detectors.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows: dict[tuple[str, str], str] = {}
    for _, filename, addresses, temporary in table(args.sdist):
        for address in addresses:
            rows[(filename, address.decode().lower())] = "soft" if temporary else "failed"
    messages = args.out / "messages"
    messages.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (args.sdist / "tests" / "data").glob("*.txt"))
    for name in names:
        shutil.copyfile(args.sdist / "tests" / "data" / name, messages / name)
    shutil.copyfile(args.sdist / "LICENSE", args.out / "LICENSE.flufl.bounce")
    with open(args.out / "expected.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["file", "recipient", "expected", "basis"])
        for (filename, address), expected in sorted(rows.items()):
            writer.writerow([f"messages/{filename}", address, expected,
                             "flufl.bounce's test table: " +
                             ("temporary" if expected == "soft" else "permanent")])
        for name in names:  # every message is read for crashes, listed or not
            if not any(f == name for f, _ in rows):
                writer.writerow([f"messages/{name}", "", "unlabelled",
                                 "flufl.bounce's test table expects nothing from it"])
    print(f"{len(names)} messages, {len(rows)} recipient rows -> {args.out}")


if __name__ == "__main__":
    main()
