"""Write a third, independent scoring set from the test suite of Mail::DeliveryStatus::BounceParser
(a Perl bounce parser, same terms as Perl: GPL or Artistic): its real bounce messages and what its
own tests expect of them, converted mechanically, without reading the messages.

    python bench/bounceparser_set.py DIST_FOLDER [--out tests/data/bounces-bounceparser]

``DIST_FOLDER`` is its unpacked distribution (version 1.543; Debian ships it as the source of
``libmail-deliverystatus-bounceparser-perl``). Most of its tests call ``check_report(FILE,
is_bounce => …, addresses => […], std_reason => …, smtp_code => …)``; those tests are run by Perl
with a ``check_report`` that prints its arguments instead of checking them, so loops and globs
over the corpus expand exactly as in its suite. The two tests that call the parser directly
(``postfix.t``, ``warnings.t``) are transcribed below. A message already in one of our other
sets (same bytes, line ends aside) is left out.

How a row gets its class (the rules of ``tests/data/bounces/README.md`` applied to its
``std_reason``): ``user_unknown`` and ``domain_error`` are hard; ``over_quota`` is soft;
``message_too_large`` and ``user_disabled`` (suspended) are soft, marked ambiguous; ``spam`` and
``unknown`` carry no status in the table, so they are ``failed`` (recipient only) unless the table's
``smtp_code`` is 4xx (soft). ``is_bounce => 0`` is not-a-bounce. A test that names no address
gives a row with recipient ``*``: scored on whatever recipients the reader finds in the message.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import fingerprint, messages_already_in

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "bounces-bounceparser"
OTHER_SETS = ("bounces", "bounces-flufl")

# check_report, printing what it was asked to check (one JSON line per call) instead of checking.
STUB = r"""package TestBounceParser;
use strict; use warnings; use JSON::PP; use Test::More; use Exporter 'import';
our @EXPORT = qw(readfile check_report);
sub readfile { local $/; open my $fh, '<', shift or die $!; return <$fh>; }
sub check_report {
    my ($filename, %expect) = @_;
    print STDOUT 'CHECK ', JSON::PP->new->canonical->encode([$filename, \%expect]), "\n";
    pass($filename);
}
1;
"""

# The tests that call the parser directly, transcribed: file → the expectations they assert.
DIRECT = {
    "postfix.msg": {"is_bounce": 1, "addresses": ["bounce@dest.example.com"]},  # postfix.t
    # postfix.t: by default the parser prefers Original-Recipient to Final-Recipient.
    "postfix-orig.msg": {"is_bounce": 1, "addresses": ["original@dest.example.com"]},
    "warning-1.msg": {"is_bounce": 1, "std_reason": "user_unknown"},  # warnings.t
    "warning-2.msg": {"is_bounce": 1, "std_reason": "user_unknown"},
    "warning-3.msg": {"is_bounce": 1, "std_reason": "user_unknown"},
    "warning-4.msg": {"is_bounce": 1, "std_reason": "over_quota"},
    "warning-5.msg": {"is_bounce": 1, "reports": 0},
    "warning-6.msg": {"is_bounce": 0},
    "warning-7.msg": {"is_bounce": 1, "std_reason": "over_quota"},
    "warning-8.msg": {"is_bounce": 0},
    "warning-9.msg": {"is_bounce": 1},  # "at least one address"
}
SKIPPED_TESTS = {"postfix.t", "warnings.t", "orig-message.t", "00-load.t", "email_addr_regex.t",
                 "pod.t", "pod-coverage.t"}

CLASS_OF_REASON = {"user_unknown": ("hard", 0), "domain_error": ("hard", 0),
                   "over_quota": ("soft", 0), "message_too_large": ("soft", 1),
                   "user_disabled": ("soft", 1)}


def expectations(dist: Path) -> dict[str, dict]:
    """File name → the expectations of its test (the last test that names it wins)."""
    found: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "dist"
        shutil.copytree(dist, copy)
        (copy / "t" / "TestBounceParser.pm").write_text(STUB)
        for test in sorted((copy / "t").glob("*.t")):
            if test.name in SKIPPED_TESTS:
                continue
            run = subprocess.run(["perl", "-T", f"t/{test.name}"], cwd=copy, capture_output=True,
                                 text=True, check=False)
            for line in run.stdout.splitlines():
                if line.strip().startswith("CHECK "):
                    filename, expect = json.loads(line.strip()[6:])
                    # message-too-large.t spells the key std_reaons; its intent is plain.
                    if "std_reaons" in expect:
                        expect["std_reason"] = expect.pop("std_reaons")
                    expect["test"] = test.name
                    found[Path(filename).name] = expect
    for name, expect in DIRECT.items():
        found[name] = {**expect, "test": "postfix.t" if "postfix" in name else "warnings.t"}
    return found


def label(expect: dict) -> tuple[str, int]:
    if not expect.get("is_bounce"):
        return "not-a-bounce", 0
    if expect.get("reports") == 0:
        return "unlabelled", 0
    reason = expect.get("std_reason")
    if reason in CLASS_OF_REASON:
        return CLASS_OF_REASON[reason]
    if str(expect.get("smtp_code", "")).startswith("4"):
        return "soft", 0
    return "failed", 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dist", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    seen = messages_already_in([ROOT / "tests" / "data" / name for name in OTHER_SETS])
    table = expectations(args.dist)
    messages = args.out / "messages"
    messages.mkdir(parents=True, exist_ok=True)
    rows, duplicates = [], []
    for path in sorted((args.dist / "t" / "corpus").glob("*.msg")):
        if fingerprint(path.read_bytes()) in seen:
            duplicates.append(path.name)
            continue
        shutil.copyfile(path, messages / path.name)
        expect = table.get(path.name)
        if expect is None:
            rows.append([path.name, "", "unlabelled", 0, "no test of it"])
            continue
        expected, ambiguous = label(expect)
        basis = f"{expect['test']}: " + ", ".join(
            f"{k}={v}" for k, v in sorted(expect.items())
            if k in ("is_bounce", "std_reason", "smtp_code", "status", "reports"))
        recipients = expect.get("addresses") or ["" if expected in ("not-a-bounce", "unlabelled")
                                                 else "*"]
        for address in recipients:
            rows.append([path.name, address.lower(), expected, ambiguous, basis])
    shutil.copyfile(args.dist / "LICENSE", args.out / "LICENSE.bounceparser")
    with open(args.out / "expected.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["file", "recipient", "expected", "ambiguous", "basis"])
        writer.writerows([f"messages/{r[0]}", *r[1:]] for r in rows)
    print(f"{len({r[0] for r in rows})} messages, {len(rows)} rows -> {args.out}; "
          f"left out as already in our sets: {duplicates or 'none'}")


if __name__ == "__main__":
    main()
