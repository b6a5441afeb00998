"""Write the held-out domain-typo cases: typing errors of the most used mailbox domains, made
systematically with a fixed seed, and real domains that must be left alone.

Every kind of slip is applied once to every provider, at a position drawn at random, so that the
file measures the suggester on typos nobody chose by looking at its answers. A generated typo that
is itself a real domain (a known provider's, one of the real domains below, a domain of the
Public Suffix List, or a .com or .net name of three characters or fewer, all of which have long been
registered) is left out: a suggester must not change those.

    python bench/make_heldout.py [--seed N] [--out FILE.csv]
"""
from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from helpdesk.known_domains import MAILBOX_PROVIDERS, split_public_suffix

OUT = Path(__file__).resolve().parent / "data/typo_heldout.csv"
PUBLIC_SUFFIX_LIST = Path("/usr/share/publicsuffix/public_suffix_list.dat")

# The most used mailbox domains, roughly by share of addresses.
PROVIDERS = """
gmail.com yahoo.com hotmail.com outlook.com icloud.com aol.com live.com msn.com comcast.net
verizon.net att.net sbcglobal.net hotmail.co.uk yahoo.co.uk gmx.de web.de orange.fr
protonmail.com mail.ru yandex.ru googlemail.com ymail.com me.com bellsouth.net charter.net
cox.net earthlink.net btinternet.com hotmail.fr yahoo.fr libero.it t-online.de free.fr gmx.net
qq.com naver.com rocketmail.com wanadoo.fr laposte.net rediffmail.com shaw.ca bigpond.com
live.co.uk hotmail.de yahoo.de
""".split()

# Real domains, many of them a slip away from a provider: none may be changed.
REAL_DOMAINS = """
mail.com email.com gmx.at gmx.ch gmx.fr live.nl live.fr aol.de ya.ru inbox.lv inbox.ru list.ru
bk.ru op.pl wp.pl o2.pl onet.pl seznam.cz libero.it virgilio.it tin.it bigpond.com shaw.ca
rogers.com telus.net bell.net cox.net charter.net earthlink.net juno.com optonline.net
frontier.com windstream.net rediffmail.com sina.com 126.com 163.com yeah.net daum.net
hanmail.net nate.com uol.com.br bol.com.br terra.com.br ig.com.br outlook.de outlook.fr
hotmail.es yahoo.es yahoo.com.br hotmail.it protonmail.ch proton.me pm.me tutanota.com hey.com
zoho.com fastmail.com posteo.de mailbox.org yandex.com yandex.ua ukr.net abv.bg freemail.hu
centrum.cz azet.sk sapo.pt ziggo.nl telenet.be skynet.be bluewin.ch aon.at
ox.ac.uk ucl.ac.uk cam.ac.uk ed.ac.uk mit.edu u.washington.edu stanford.edu harvard.edu
berkeley.edu cmu.edu ethz.ch epfl.ch tum.de uni-heidelberg.de u-tokyo.ac.jp unimelb.edu.au
utoronto.ca mcgill.ca kth.se uva.nl ku.dk uib.no helsinki.fi uw.edu
acme-corp.com company.co startup.io acme.org.uk aon.com gmc.com web.com apple.com google.com
microsoft.com amazon.com ibm.com sap.com siemens.de bosch.de airbus.com nestle.com bbc.co.uk
nhs.net vodafone.com telekom.de orange.com bt.com samsung.com lg.com hp.com dell.com gm.com
ge.com att.com verizon.com comcast.com cox.com charter.com mailw.com gmx.us yahoo.net
cloud.com life.com
""".split()

# QWERTY neighbours, including the diagonals on the rows above and below.
KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def keyboard_neighbours() -> dict[str, str]:
    """Keys touching each key: beside it on its row, and the two it sits between on the rows
    above and below (each row is about half a key right of the one above)."""
    x_of = {key: (column + row / 2, row) for row, keys in enumerate(KEY_ROWS)
            for column, key in enumerate(keys)}
    return {
        key: "".join(
            other for other, (other_x, other_row) in x_of.items()
            if other != key and (
                (other_row == row and abs(other_x - x) == 1)
                or (abs(other_row - row) == 1 and abs(other_x - x) == 0.5)
            )
        )
        for key, (x, row) in x_of.items()
    }


NEIGHBOURS = keyboard_neighbours()

BROKEN_COM = ["con", "cmo", "comm", "om", "cm", "vom", "xom", "coom", "ocm", "cim", "co,"]
BROKEN_NET = ["nte", "ner", "et", "nett", "ent", "bet"]
BROKEN_CO_UK = ["couk", "co.uj", "co.ul", "co.k", "co.ukk", "c.ouk"]


def letter_positions(name: str) -> list[int]:
    return [i for i, letter in enumerate(name) if letter in NEIGHBOURS]


def neighbour_key(name: str, rng: random.Random) -> str | None:
    if not letter_positions(name):
        return None
    i = rng.choice(letter_positions(name))
    return name[:i] + rng.choice(NEIGHBOURS[name[i]]) + name[i + 1:]


def transposition(name: str, rng: random.Random) -> str | None:
    pairs = [i for i in range(len(name) - 1) if name[i] != name[i + 1]]
    if not pairs:
        return None
    i = rng.choice(pairs)
    return name[:i] + name[i + 1] + name[i] + name[i + 2:]


def dropped_letter(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(name))
    return name[:i] + name[i + 1:]


def dropped_first_letter(name: str, rng: random.Random) -> str:
    return name[1:]


def doubled_letter(name: str, rng: random.Random) -> str:
    i = rng.randrange(len(name))
    return name[:i] + name[i] + name[i:]


def extra_neighbour_key(name: str, rng: random.Random) -> str | None:
    if not letter_positions(name):
        return None
    i = rng.choice(letter_positions(name))
    extra = rng.choice(NEIGHBOURS[name[i]])
    at = i if rng.random() < 0.5 else i + 1  # before or after the key it is next to
    return name[:at] + extra + name[at:]


NAME_SLIPS: dict[str, Callable[[str, random.Random], str | None]] = {
    "neighbour key": neighbour_key,
    "transposition": transposition,
    "dropped letter": dropped_letter,
    "dropped first letter": dropped_first_letter,
    "doubled letter": doubled_letter,
    "extra neighbour key": extra_neighbour_key,
}


def typos(domain: str, rng: random.Random) -> Iterator[tuple[str, str]]:
    """(kind, typed) for every kind of slip that applies to ``domain``."""
    name, ending = split_public_suffix(domain)
    for kind, slip in NAME_SLIPS.items():
        slipped = slip(name, rng)
        if slipped:
            yield kind, f"{slipped}.{ending}"
    yield "missing dot", domain.replace(".", "", 1) if ending == "co.uk" else name + ending
    dot = len(name)
    shift = rng.choice((-1, 1))
    letters = domain.replace(".", "", 1)
    yield "dot moved", f"{letters[:dot + shift]}.{letters[dot + shift:]}"
    broken = {"com": BROKEN_COM, "net": BROKEN_NET, "co.uk": BROKEN_CO_UK}.get(ending)
    if broken:
        yield "broken ending", f"{name}.{rng.choice(broken)}"
    else:
        yield "broken ending", f"{name}.{neighbour_key(ending, rng)}"  # gmx.df, orange.ft


def surely_registered(domain: str) -> bool:
    """Every .com and .net name of up to three letters or digits has been registered for years."""
    name, ending = split_public_suffix(domain) or (domain, "")
    return ending in ("com", "net") and len(name) <= 3 and name.isalnum()


def public_suffix_list_domains() -> set[str]:
    """Every rule of the Public Suffix List that names a domain outright."""
    if not PUBLIC_SUFFIX_LIST.exists():
        return set()
    lines = PUBLIC_SUFFIX_LIST.read_text(encoding="utf-8").splitlines()
    return {
        line.strip().lstrip("!").lower() for line in lines
        if line.strip() and not line.startswith("//") and "*" not in line
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", type=Path, default=OUT)
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)
    real = (
        {domain for provider in MAILBOX_PROVIDERS for domain in provider}
        | set(REAL_DOMAINS) | public_suffix_list_domains()
    )
    rows: dict[str, tuple[str, str]] = {}
    left_out = 0
    for domain in PROVIDERS:
        for kind, typed in typos(domain, rng):
            if typed == domain or typed in real or surely_registered(typed) or typed in rows:
                left_out += 1
                continue
            rows[typed] = (domain, kind)
    with arguments.out.open("w", newline="", encoding="utf-8") as out:
        out.write(
            f"# Generated by bench/make_heldout.py --seed {arguments.seed}: every slip applied once"
            " to each provider; typos that are real domains left out.\n"
        )
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["typed_domain", "expected"])
        writer.writerows((typed, domain) for typed, (domain, _) in rows.items())
        writer.writerows((domain, "") for domain in dict.fromkeys(REAL_DOMAINS))
    print(f"{len(rows)} typos ({left_out} left out), {len(set(REAL_DOMAINS))} real domains")


if __name__ == "__main__":
    main()
