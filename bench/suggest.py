"""Measure the domain-typo suggester against pymailcheck and email-validator.

Each case file is a CSV with the columns ``typed_domain`` and ``expected`` (empty: the domain is
real and must be left alone); lines starting with ``#`` are comments. For every tool it prints
precision (right suggestions among all suggestions made), recall (typos fixed), F1 and how many
real domains it changed, then suggestions per second for ours and pymailcheck's.

Then what the installation's history adds (same run, same cases): ours before and after bounce
evidence. The history is simulated: every typo domain bounced as "host unknown", as a domain
nobody registered does (a typo domain someone registered would bounce otherwise, or take the
mail, so this is the most the evidence can add); real domains did not. A last line gives the
worst case: every domain, real ones too, bounced so (a real domain whose DNS failed), to show
what wrong evidence would cost.

``--real-domains-check`` instead runs ours on lists of real domains, none of which it may change:
the private section of the Public Suffix List (companies' own domains) and any ``--real-domains``
file, one domain a line.

    python bench/suggest.py [--cases FILE.csv ...] [--repeat N]
    python bench/suggest.py --real-domains-check [--real-domains FILE ...]
"""
from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Callable
from pathlib import Path

import email_validator
import pymailcheck

from helpdesk.validation import suggest_domain

DEV_CASES = Path(__file__).resolve().parents[1] / "tests/data/typo_dev.csv"  # the shared development set
PUBLIC_CASES = Path(__file__).resolve().parent / "data/typo_public.csv"
HELDOUT_CASES = Path(__file__).resolve().parent / "data/typo_heldout.csv"
PUBLIC_SUFFIX_LIST = Path("/usr/share/publicsuffix/public_suffix_list.dat")

Suggester = Callable[[str], "str | None"]


def ours(domain: str) -> str | None:
    suggestion = suggest_domain(domain)
    return suggestion.domain if suggestion else None


def ours_with_bounce_evidence(domain: str, domain_unknown: bool) -> str | None:
    suggestion = suggest_domain(domain, domain_unknown=domain_unknown)
    return suggestion.domain if suggestion else None


def with_pymailcheck(domain: str) -> str | None:
    suggestion = pymailcheck.suggest(f"someone@{domain}")
    return suggestion["domain"] if suggestion else None


def with_email_validator(domain: str) -> str | None:
    """email-validator checks and normalises but never proposes another domain."""
    try:
        email_validator.validate_email(f"someone@{domain}", check_deliverability=False)
    except email_validator.EmailNotValidError:
        pass
    return None


TOOLS: dict[str, Suggester] = {
    "ours": ours,
    "pymailcheck": with_pymailcheck,
    "email-validator": with_email_validator,
}


def read_cases(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as lines:
        rows = csv.DictReader(line for line in lines if not line.startswith("#"))
        return [(row["typed_domain"], row["expected"].strip()) for row in rows]


def score(suggest: Suggester, cases: list[tuple[str, str]]) -> dict[str, float]:
    made = right = real_changed = 0
    typos = sum(1 for _, expected in cases if expected)
    for typed, expected in cases:
        suggestion = suggest(typed)
        if suggestion is None:
            continue
        made += 1
        right += suggestion == expected
        real_changed += not expected
    precision = right / made if made else math.nan  # no suggestion made: nothing to be right about
    recall = right / typos if typos else math.nan
    f1 = 2 * precision * recall / (precision + recall) if made and right else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "real_changed": real_changed}


def score_with_history(cases: list[tuple[str, str]], *, all_bounced: bool) -> dict[str, float]:
    """``score`` of ours when typo domains (all domains with ``all_bounced``) bounced as
    "host unknown" before."""
    evidence = {typed: all_bounced or bool(expected) for typed, expected in cases}
    return score(lambda typed: ours_with_bounce_evidence(typed, evidence[typed]), cases)


def print_row(name: str, result: dict[str, float]) -> None:
    precision = "n/a" if math.isnan(result["precision"]) else f"{result['precision']:.3f}"
    print(f"{name:16} {precision:>9} {result['recall']:7.3f} {result['f1']:6.3f}"
          f" {result['real_changed']:21d}")


def suggestions_per_second(suggest: Suggester, domains: list[str], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for domain in domains:
            suggest(domain)
    return repeat * len(domains) / (time.perf_counter() - started)


def report(path: Path, repeat: int) -> None:
    cases = read_cases(path)
    typos = sum(1 for _, expected in cases if expected)
    print(f"\n{path}: {len(cases)} cases, {typos} typos, {len(cases) - typos} real domains")
    print(f"{'tool':16} {'precision':>9} {'recall':>7} {'F1':>6} {'real domains changed':>21}")
    for name, suggest in TOOLS.items():
        print_row(name, score(suggest, cases))
    print('bounce evidence (history: the typo domains bounced as "host unknown"):')
    print_row("ours, before", score(ours, cases))
    print_row("ours, after", score_with_history(cases, all_bounced=False))
    print_row("after, worst case", score_with_history(cases, all_bounced=True))
    domains = [typed for typed, _ in cases]
    our_speed = suggestions_per_second(ours, domains, repeat)
    their_speed = suggestions_per_second(with_pymailcheck, domains, repeat)
    print(
        f"suggestions per second: ours {our_speed:,.0f}, pymailcheck {their_speed:,.0f}"
        f" (ours is {our_speed / their_speed:.1f}x pymailcheck)"
    )


def public_suffix_list_private_domains(path: Path = PUBLIC_SUFFIX_LIST) -> list[str]:
    """The domains named outright in the list's private section: companies' and projects' own."""
    text = path.read_text(encoding="utf-8")
    private = text.partition("===BEGIN PRIVATE DOMAINS===")[2]
    rules = (line.strip() for line in private.splitlines())
    named = {rule for rule in rules if rule and not rule.startswith("//") and "*" not in rule}
    return sorted(named)


def read_domains(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def check_real_domains(lists: dict[str, list[str]]) -> bool:
    """Print every real domain ours would change; True when there is none."""
    untouched = True
    for name, domains in lists.items():
        changed = {domain: ours(domain) for domain in domains if ours(domain)}
        untouched = untouched and not changed
        print(f"{name}: {len(domains)} real domains, {len(changed)} changed")
        for domain, suggestion in sorted(changed.items()):
            print(f"    {domain} -> {suggestion}")
    return untouched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        type=Path,
        action="append",
        help="a CSV of cases (repeatable); default: the dev, public and held-out cases",
    )
    parser.add_argument(
        "--real-domains-check",
        action="store_true",
        help="check that no real domain is changed, then stop (exit status 1 if one is)",
    )
    parser.add_argument(
        "--real-domains",
        type=Path,
        action="append",
        default=[],
        help="with --real-domains-check: a file of real domains, one a line (repeatable)",
    )
    parser.add_argument("--repeat", type=int, default=50, help="passes over the cases when timing")
    arguments = parser.parse_args()
    if arguments.real_domains_check:
        lists = {str(path): read_domains(path) for path in arguments.real_domains}
        if PUBLIC_SUFFIX_LIST.exists():
            lists[f"{PUBLIC_SUFFIX_LIST} (private section)"] = public_suffix_list_private_domains()
        raise SystemExit(0 if check_real_domains(lists) else 1)
    started = time.perf_counter()
    suggest_domain("warm.up")  # builds the indexes once, as the first request of a process does
    print(f"index built in {(time.perf_counter() - started) * 1000:.0f} ms")
    for path in arguments.cases or [DEV_CASES, PUBLIC_CASES, HELDOUT_CASES]:
        report(path, arguments.repeat)


if __name__ == "__main__":
    main()
