"""Score the bounce reader on real bounce messages, beside flufl.bounce (the Mailman project's
bounce detector) run on the same messages in the same run.

    python bench/bounces.py [--data tests/data/bounces] [--split all|develop|holdout] [--show N]
    python bench/bounces.py --data tests/data/bounces-flufl

The data folder holds ``expected.csv`` (one row per message and recipient: ``hard``, ``soft``
or ``not-a-bounce``; ``failed`` for a failed recipient whose class is not labelled, scored for
the recipient found only; ``unlabelled`` for a message read for crashes only) and the
messages; its README.md says how rows get their class. Scored as it says:
- recipient found: the expected address is the recipient of an event read from the message;
- class correct: hard: that recipient gets an event that makes it bounced; soft: it is found
  and none of its events makes it bounced or delivered; not-a-bounce: nothing in the message
  makes anyone bounced;
- soft never bounced: among soft rows, the share where no event of that recipient bounces;
- crashes: any exception other than a clear refusal (ValueError).

``--mutate``: instead, every message of the sets is also read cut short at 30 points, with CRLF,
CR-only and LF line ends, with ten random byte runs overwritten and its lines shuffled five
times (a fixed seed): the count of crashes (anything but a clear ValueError) is printed.

``--split``: a fixed 30% of the messages (by a hash of the file name, so a message and its
CRLF copy fall on the same side) is held out; develop on the rest, check on it.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import random
import sys
import time
import traceback
from collections import defaultdict
from email import message_from_bytes
from pathlib import Path

from flufl.bounce import all_failures

from helpdesk.status import event_level
from helpdesk_smtp.bounces import parse_bounce

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"recipient found": 0.97, "class correct": 0.90}


def held_out(file: str) -> bool:
    """The fixed 30% of messages kept aside to check that the reader generalises."""
    return hashlib.sha256(Path(file).name.encode()).digest()[0] < 77  # 77/256 ≈ 30%


def rows_of(data: Path, split: str) -> list[dict[str, str]]:
    with open(data / "expected.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    if split == "holdout":
        return [r for r in rows if held_out(r["file"])]
    if split == "develop":
        return [r for r in rows if not held_out(r["file"])]
    return rows


def ours(raw: bytes) -> dict[str, set[str]]:
    """Recipient → the levels its events raise a delivery to ("" for a timeline-only one). An
    event names the address we sent to; where the report says it was rewritten (a forward, an
    alias: the DSN's Final-Recipient beside its Original-Recipient), it names that one too."""
    found: dict[str, set[str]] = defaultdict(set)
    read = parse_bounce(raw)
    for event in read if isinstance(read, list) else []:
        final = (event.raw or {}).get("final_recipient")
        for address in filter(None, (event.recipient, final)):
            found[address.lower()].add(event_level(event.type) or "")
    return found


def flufl(raw: bytes) -> dict[str, set[str]]:
    temporary, permanent = all_failures(message_from_bytes(raw))
    found: dict[str, set[str]] = defaultdict(set)
    for address in temporary:
        found[address.decode("utf-8", "replace").lower()].add("")
    for address in permanent:
        found[address.decode("utf-8", "replace").lower()].add("bounced")
    return found


def score(reader, rows: list[dict[str, str]], data: Path, show: int = 0) -> dict[str, object]:
    results: dict[str, dict[str, set[str]] | None] = {}
    crashes: list[str] = []
    refusals = 0
    started = time.perf_counter()
    for file in sorted({r["file"] for r in rows}):
        raw = (data / file).read_bytes()
        try:
            results[file] = reader(raw)
        except ValueError:
            refusals += 1
            results[file] = {}
        except Exception:  # noqa: BLE001 - a crash is what is being counted
            crashes.append(f"{file}: {traceback.format_exc(limit=-1).strip()}")
            results[file] = {}
    elapsed = time.perf_counter() - started
    found = correct = soft_rows = soft_ok = bounce_rows = labelled = any_rows = any_read = 0
    misses: list[str] = []
    for row in rows:
        events = results[row["file"]] or {}
        expected, recipient = row["expected"], row["recipient"].lower()
        levels = events.get(recipient, set())
        if expected == "unlabelled":
            continue
        if recipient == "*":  # no address named: every recipient read counts
            levels = set().union(*events.values())
            any_rows += 1
            any_read += bool(events)
        if expected == "not-a-bounce":
            ok = not any("bounced" in lv for lv in events.values())
        elif recipient == "*" and expected == "failed":
            ok = bool(levels)
        else:
            bounce_rows += recipient != "*"
            found += bool(levels) and recipient != "*"
            if expected == "failed":  # no class to check
                ok = bool(levels)
            elif expected == "hard":
                ok = "bounced" in levels
            else:
                ok = bool(levels) and not levels & {"bounced", "not_opened"}
                soft_rows += 1
                soft_ok += "bounced" not in levels
        if expected != "failed":  # rows with a class
            labelled += 1
            correct += ok
        if not ok:
            file = Path(row["file"])
            misses.append(f"{file.relative_to(ROOT) if file.is_relative_to(ROOT) else file} "
                          f"{expected} {recipient}: got "
                          f"{ {k: sorted(v) for k, v in events.items()} } "
                          f"({row.get('sisimai_reason') or row.get('basis', '')} "
                          f"{row.get('sisimai_status', '')})")
    for line in misses[:show]:
        print("   miss", line)
    for line in crashes[:show]:
        print("   crash", line)
    return {"recipient found": found / bounce_rows if bounce_rows else None,
            "class correct": correct / labelled if labelled else None,
            "soft never bounced": soft_ok / soft_rows if soft_rows else None,
            "crashes": len(crashes),
            "bounce read": any_read / any_rows if any_rows else None, "any rows": any_rows,
            "refused": refusals, "messages": len(results), "rows": len(rows),
            "recipient rows": bounce_rows, "class rows": labelled, "soft rows": soft_rows,
            "ms per message": 1000 * elapsed / max(len(results), 1)}


def variants(raw: bytes, rng: random.Random) -> list[bytes]:
    """Damaged copies of a message: cut short, other line ends, bytes overwritten, lines
    shuffled."""
    found = [raw[:end] for end in range(0, len(raw), max(1, len(raw) // 30))]
    found += [raw.replace(b"\n", b"\r\n"), raw.replace(b"\n", b"\r"),
              raw.replace(b"\r\n", b"\n")]
    for _ in range(10):
        damaged = bytearray(raw)
        at = rng.randrange(max(len(raw), 1))
        damaged[at:at + rng.randrange(1, 40)] = rng.randbytes(rng.randrange(40))
        found.append(bytes(damaged))
    for _ in range(5):
        lines = raw.split(b"\n")
        rng.shuffle(lines)
        found.append(b"\n".join(lines))
    return found


def mutate(files: list[Path]) -> int:
    rng = random.Random(9)
    runs = crashes = 0
    for file in files:
        for raw in variants(file.read_bytes(), rng):
            runs += 1
            try:
                parse_bounce(raw)
            except ValueError as error:
                crashes += not str(error)  # a refusal says why
            except Exception:  # noqa: BLE001 - a crash is what is being counted
                crashes += 1
                print(f"   crash {file}: {traceback.format_exc(limit=-1).strip()}")
    print(f"{len(files)} messages, {runs} damaged copies read: {crashes} crashes")
    return crashes


def report(name: str, figures: dict[str, object]) -> str:
    def share(key: str) -> str:
        return "   n/a" if figures[key] is None else f"{figures[key]:6.1%}"

    return (f"{name:13}: recipient found {share('recipient found')}, class correct "
            f"{share('class correct')}, soft never bounced "
            f"{share('soft never bounced')}, crashes {figures['crashes']}, refused "
            f"{figures['refused']}; {figures['ms per message']:.2f} ms/message"
            + (f"; bounce read {figures['bounce read']:6.1%}"
               if figures["bounce read"] is not None else ""))


def counts(figures: dict[str, object]) -> str:
    return (f"(over {figures['recipient rows']} rows with a recipient, {figures['class rows']} "
            f"with a class, {figures['soft rows']} soft"
            + (f", {figures['any rows']} naming no address" if figures["any rows"] else "") + ")")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append",
                        help="a scoring set (default tests/data/bounces); given more than once, "
                             "their rows are pooled")
    parser.add_argument("--split", choices=("all", "develop", "holdout"), default="all")
    parser.add_argument("--show", type=int, default=0, help="print up to N misses")
    parser.add_argument("--mutate", action="store_true",
                        help="read damaged copies of every message; count crashes")
    args = parser.parse_args()
    sets = args.data or [ROOT / "tests" / "data" / "bounces"]
    if args.mutate:
        files = sorted({(d / r["file"]).resolve() for d in sets for r in rows_of(d, "all")})
        return 1 if mutate(files) else 0
    # Each row's file made absolute, so that rows of several sets pool.
    rows = [{**row, "file": str((data / row["file"]).resolve())}
            for data in sets for row in rows_of(data, args.split)]
    print(f"{args.split}: {len({r['file'] for r in rows})} messages, {len(rows)} rows "
          f"({', '.join(str(d) for d in sets)})")
    mine = score(ours, rows, Path("/"), args.show)
    theirs = score(flufl, rows, Path("/"))
    print(report("helpdesk", mine))
    print(report("flufl.bounce", theirs))
    print(counts(mine))
    met = all(mine[k] is None or mine[k] >= v for k, v in TARGETS.items()) and \
        mine["crashes"] == 0
    print("targets (recipient found >= 97%, class correct >= 90%, "
          f"0 crashes): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
