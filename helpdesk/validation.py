"""Checking an email address: is it well formed, what is its normal form, and was its domain
probably mistyped (``gmial.com``, ``acme-corp.con``)?

Syntax, normalisation and the optional DNS check come from email-validator. Suggestions come from
our own suggester, deterministic and without network: it compares the domain with known mailbox
domains using an edit distance that knows how people mistype, and repairs broken endings on any
domain. It leaves alone every domain it knows and every unknown domain with a real ending, unless
that domain is one typing error away from a mailbox provider: a wrong correction of a real domain
does more harm than a missed typo. Evidence that a domain does not exist (mail to it bounced as
"host unknown") removes that risk, so such a domain is corrected on looser terms.

Costs are in tenths of an arbitrary one-letter edit, so that they add up exactly.
"""
from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import email_validator
import idna

from .known_domains import COMMON_ENDINGS, MAILBOX_PROVIDERS, TLDS, split_public_suffix

DNS_TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class EmailCheck:
    """The verdict on one address; its fields are the API's email check."""

    input: str
    valid: bool
    normalized: str | None
    error: str | None
    suggestion: str | None  # a whole corrected address
    confidence: float | None  # in the suggestion, 0..1


@dataclass(frozen=True)
class DomainSuggestion:
    domain: str
    confidence: float


def check_email(
    address: str, known_domains: Iterable[str] = (), check_deliverability: bool = False,
    unknown_domains: Iterable[str] = (),
) -> EmailCheck:
    """Validate and normalise ``address`` and suggest a correction of a mistyped domain.

    ``known_domains`` are domains to treat as real besides the built-in mailbox providers (the
    installation's past recipients, plugins' domains); ``unknown_domains`` those known not to
    exist (mail to them bounced as "host unknown"). ``check_deliverability`` also asks DNS
    whether the domain accepts mail, with a short timeout and a cache.
    """
    unknown = frozenset(_normalized(d) for d in unknown_domains)
    text = address.strip()
    try:
        validated = email_validator.validate_email(
            text,
            check_deliverability=check_deliverability,
            dns_resolver=_dns_resolver() if check_deliverability else None,
        )
    except email_validator.EmailNotValidError as error:
        local_part, _, domain = text.partition("@")
        if local_part and domain and "@" not in domain:
            suggestion = suggest_domain(domain, known_domains,
                                        domain_unknown=_normalized(domain) in unknown)
        else:
            suggestion = None
        return EmailCheck(address, False, None, str(error), *_whole_address(local_part, suggestion))
    suggestion = suggest_domain(validated.domain, known_domains,
                                domain_unknown=_normalized(validated.domain) in unknown)
    return EmailCheck(
        address, True, validated.normalized, None, *_whole_address(validated.local_part, suggestion)
    )


def _whole_address(
    local_part: str, suggestion: DomainSuggestion | None
) -> tuple[str | None, float | None]:
    if suggestion is None:
        return None, None
    return f"{local_part}@{suggestion.domain}", suggestion.confidence


@functools.cache
def _dns_resolver():
    return email_validator.caching_resolver(timeout=DNS_TIMEOUT_SECONDS)


def suggest_domain(
    domain: str, known: Iterable[str] = (), *, domain_unknown: bool = False
) -> DomainSuggestion | None:
    """The domain the sender probably meant, or None when ``domain`` should be left alone.

    ``known`` lists extra real domains: never changed, and suggested like mailbox providers.
    ``domain_unknown``: mail to ``domain`` bounced because it does not exist (see
    :meth:`DomainSuggester.suggest`). For many calls with a long ``known`` list, build one
    :class:`DomainSuggester` instead.
    """
    return _suggester(frozenset(known)).suggest(domain, domain_unknown=domain_unknown)


@functools.lru_cache(maxsize=16)
def _suggester(known: frozenset[str]) -> DomainSuggester:
    return DomainSuggester(known)


# What a typing error costs. Omissions, doubled letters, neighbouring keys and swapped letters are
# the common slips, so they cost less than an arbitrary substitution or insertion.
ARBITRARY = 10
NEIGHBOUR_KEY = 5  # typed a key next to the right one
SWAPPED = 5  # two neighbouring letters in the wrong order
DOUBLED = 4  # a letter typed twice, or one of a double typed once
DROPPED = 6  # a letter left out
EXTRA_NEIGHBOUR = 6  # an extra key pressed next to one of its neighbours
SEPARATOR = 4  # a dot (or hyphen) left out, added or swapped for the other
FIRST_LETTER = 5  # surcharge: people rarely get the first letter of a name wrong
DOT_MOVED = 5  # gmailc.om
CLEANED = 4  # characters that cannot be in a domain (#, quotes, spaces), a comma for a dot
ENDING_REPEATED = 4  # gmail.com.com
LABEL_ADDED = 12  # a known domain then a broken label: gmail.com.cmo (dearer than fixing the label)
ENDING_MISSING = 6  # a provider's name alone: gmail
COUNTRY_VARIANT = 5  # choosing yahoo.cn rather than yahoo.com
TWO_SMALL_SLIPS = 2 * DOUBLED

# For a domain known not to exist, a name correction may cost this much whatever its length,
# and a provider's own ending may be reached by one small slip (cox.bet).
UNKNOWN_NAME_BUDGET = ARBITRARY + NEIGHBOUR_KEY + FIRST_LETTER
UNKNOWN_ENDING_BUDGET = DROPPED

MARGIN = 3  # a runner-up closer than this to the best candidate means no suggestion
BROKEN_ENDING_BUDGET = 10  # what may be spent repairing an ending that is not real


def name_budget(name: str, rank: int) -> int:
    """What a name correction may cost: more for longer names, nothing for the shortest ones.
    The most used providers' five-letter names (gmail, yahoo) are typed so often that two small
    slips with repeated letters (yahho, gmaii) still point at them."""
    length = len(name)
    if length <= 3:
        return 0
    if length == 4:
        return DOUBLED
    if length == 5:
        return TWO_SMALL_SLIPS if rank_prior(rank) == 0 else DROPPED
    if length <= 8:
        return ARBITRARY
    return ARBITRARY + NEIGHBOUR_KEY


_VOWELS = frozenset("aeiou")


def first_letter_may_be_dropped(name: str, rank: int) -> bool:
    """Whether leaving out the first letter of ``name`` still points at it (otmail, ahoo).

    Only when the first letter is a consonant that begins a syllable with the vowel after it
    (ho-tmail, ya-hoo): an initial standing alone (i-cloud, g-mail, t-online, i-africa) leaves a
    word that is a name of its own (cloud.com, mail.com, online.de, africa.com). And only for
    widely used providers, whose names people type from memory and fast; among five-letter
    names, only the most used, as shorter remainders are more often names of their own.
    """
    if len(name) < 5 or rank_prior(rank) > (0 if len(name) == 5 else 1):
        return False
    return name[0].isalpha() and name[0] not in _VOWELS and name[1] in _VOWELS | {"y"}


def name_fits(typed: str, intended: str, score: int, rank: int) -> bool:
    """Whether explaining the name ``typed`` as ``intended`` at ``score`` is believable."""
    if score <= name_budget(intended, rank):
        return True
    return typed == intended[1:] and first_letter_may_be_dropped(intended, rank)


def rank_prior(rank: int) -> int:
    """The most used providers are the likeliest intended targets: the first lines of the list
    are the global giants, the next ones the big national providers."""
    if rank < 16:
        return 0
    if rank < 60:
        return 1
    return 2


EXTRA_DOMAIN_RANK = len(MAILBOX_PROVIDERS)  # domains passed in rank with the least used providers


_COMMON_ENDING_RANKS = {ending: rank for rank, ending in enumerate(COMMON_ENDINGS)}


def ending_prior(ending: str) -> int:
    """.com dwarfs every other ending in addresses; a rare ccTLD is almost never the intent."""
    rank = _COMMON_ENDING_RANKS.get(ending)
    if rank is None:
        return 7
    if rank == 0:
        return 0
    return 1 if rank <= 2 else 3


# QWERTY rows, each shifted half a key right of the row above.
_KEY_ROWS = ("1234567890-", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbouring_keys() -> frozenset[tuple[str, str]]:
    pairs = set()
    for row_number, row in enumerate(_KEY_ROWS):
        for column, key in enumerate(row):
            neighbours = [row[max(column - 1, 0) : column], row[column + 1 : column + 2]]
            if row_number + 1 < len(_KEY_ROWS):
                below = _KEY_ROWS[row_number + 1]
                neighbours += [below[max(column - 1, 0) : column], below[column : column + 1]]
            for neighbour in filter(None, neighbours):
                pairs |= {(key, neighbour), (neighbour, key)}
    return frozenset(pairs)


_NEIGHBOURS = _neighbouring_keys()
_SEPARATORS = ".-"
_SUBSTITUTION_COSTS = {
    **{pair: NEIGHBOUR_KEY for pair in _NEIGHBOURS},
    **{(a, b): SEPARATOR for a in _SEPARATORS for b in _SEPARATORS if a != b},
}


def typing_cost(typed: str, intended: str, *, first_letter_matters: bool = True) -> int:
    """What it costs to explain ``typed`` as a mistyped ``intended``.

    A weighted Damerau-Levenshtein distance (optimal string alignment): each edit costs what it
    says about typing, judged on the letters around it.
    """
    # Typos are local: skip the common start and end, keeping positions for the context.
    start = 0
    while start < len(typed) and start < len(intended) and typed[start] == intended[start]:
        start += 1
    end = 0
    while min(len(typed), len(intended)) - end > start and typed[-1 - end] == intended[-1 - end]:
        end += 1
    typed_end, intended_end = len(typed) - end, len(intended) - end

    first_letter = FIRST_LETTER if first_letter_matters and start == 0 else 0
    extra = [_extra_cost(typed, j) for j in range(start, typed_end)]
    if extra:
        extra[0] += first_letter
    previous = [0]
    for cost in extra:
        previous.append(previous[-1] + cost)
    before_previous = previous
    for i in range(start, intended_end):
        letter = intended[i]
        surcharge = first_letter if i == 0 else 0
        missing = _missing_cost(intended, i) + surcharge
        current = [previous[0] + missing]
        for k, extra_cost in enumerate(extra):
            j = start + k
            typed_letter = typed[j]
            best = previous[k]
            if letter != typed_letter:
                best += _SUBSTITUTION_COSTS.get((letter, typed_letter), ARBITRARY) + surcharge
            best = min(best, previous[k + 1] + missing, current[k] + extra_cost)
            if k and i > start and letter == typed[j - 1] and intended[i - 1] == typed_letter:
                best = min(best, before_previous[k - 1] + SWAPPED)
            current.append(best)
        before_previous, previous = previous, current
    return previous[-1]


def _extra_cost(typed: str, position: int) -> int:
    """The cost of ``typed[position]`` being a key pressed by mistake."""
    letter = typed[position]
    if letter in _SEPARATORS:
        return SEPARATOR
    around = typed[max(position - 1, 0) : position] + typed[position + 1 : position + 2]
    if letter in around:
        return DOUBLED
    if any((letter, other) in _NEIGHBOURS for other in around):
        return EXTRA_NEIGHBOUR
    return ARBITRARY


def _missing_cost(intended: str, position: int) -> int:
    """The cost of leaving out ``intended[position]``."""
    letter = intended[position]
    if letter in _SEPARATORS:
        return SEPARATOR
    if letter in intended[max(position - 1, 0) : position] + intended[position + 1 : position + 2]:
        return DOUBLED
    return DROPPED


def edits_considered(word: str) -> int:
    """How many edits away candidates are looked for: one for short words, whose budgets allow
    no more (two edits rewrite most of a short ending), two for longer ones."""
    return 1 if len(word) <= 5 else 2


def _deletions(word: str) -> set[str]:
    """``word`` and every string made from it by deleting up to edits_considered(word) letters."""
    found = frontier = {word}
    for _ in range(edits_considered(word)):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found = found | frontier
    return found


class _NearIndex:
    """Finds the words within a few edits of a word without comparing it to all of them
    (symmetric deletion: such words share a string obtained by deleting letters from both)."""

    def __init__(self, words: Iterable[str]):
        self._words_by_deletion: dict[str, set[str]] = defaultdict(set)
        for word in words:
            for deletion in _deletions(word):
                self._words_by_deletion[deletion].add(word)

    def near(self, word: str) -> set[str]:
        found: set[str] = set()
        for deletion in _deletions(word):
            found |= self._words_by_deletion.get(deletion, set())
        return found


class _Mailboxes:
    """Known domains as names (``hotmail``) with their endings (``com``, ``co.uk``) and ranks."""

    def __init__(self, ranked_domains: Iterable[tuple[str, int, bool]]):
        self.domains: set[str] = set()
        self.main_domains: set[str] = set()
        self.endings: dict[str, dict[str, int]] = {}
        for domain, rank, is_main in ranked_domains:
            # A domain passed in may end in no real suffix (an intranet's): split at its last dot.
            name, _, ending = domain.rpartition(".")
            name, ending = split_public_suffix(domain) or (name, ending)
            if name and ending:
                self.domains.add(domain)
                if is_main:
                    self.main_domains.add(domain)
                self.endings.setdefault(name, {}).setdefault(ending, rank)
        self.names = _NearIndex(self.endings)
        self.all_endings = _NearIndex({e for endings in self.endings.values() for e in endings})

    def ending_prior(self, name: str, ending: str) -> int:
        """How unlikely this provider's ending is when we choose it: a country variant is much
        less used than the provider's main domain."""
        variant = 0 if f"{name}.{ending}" in self.main_domains else COUNTRY_VARIANT
        return rank_prior(self.endings[name][ending]) + variant


@functools.cache
def _builtin_mailboxes() -> _Mailboxes:
    return _Mailboxes(
        (domain, rank, domain == provider[0])
        for rank, provider in enumerate(MAILBOX_PROVIDERS)
        for domain in provider
    )


@functools.cache
def _repair_endings() -> _NearIndex:
    """The endings a broken one is repaired to: the common ones and every country's."""
    country_codes = (tld for tld in TLDS if len(tld) == 2 and tld.isascii())
    return _NearIndex([*COMMON_ENDINGS, *country_codes])


_PROVIDER, _REPAIR = "provider", "repair"


@dataclass(frozen=True)
class _Candidate:
    domain: str
    score: int
    kind: str  # _PROVIDER: a known domain; _REPAIR: the typed domain with its ending repaired
    acceptable: bool  # within the budgets; others only compete as runners-up


class _Candidates:
    def __init__(self) -> None:
        self._items: list[_Candidate] = []

    def add(self, domain: str, score: int, kind: str, acceptable: bool = True) -> None:
        self._items.append(_Candidate(domain, score, kind, acceptable))

    def best(self) -> DomainSuggestion | None:
        """The cheapest acceptable candidate, known domains first, if no rival comes close."""
        for kind in (_PROVIDER, _REPAIR):
            pool = [c for c in self._items if c.kind == kind]
            acceptable = [c for c in pool if c.acceptable]
            if not acceptable:
                continue
            winner = min(acceptable, key=lambda c: (c.score, c.domain))
            runner_up = min((c.score for c in pool if c.domain != winner.domain), default=math.inf)
            margin = runner_up - winner.score
            if margin < MARGIN:
                return None
            return DomainSuggestion(winner.domain, _confidence(winner.score, margin))
        return None


def _confidence(score: int, margin: float) -> float:
    """Higher for a cheaper explanation and a more distant runner-up."""
    return round(max(0.05, 1 - score / 25) * min(1.0, 0.6 + margin / 25), 2)


def _normalized(domain: str) -> str:
    """Lower case, with IDN labels in Unicode (as email-validator gives them), so that both
    spellings of an internationalised domain match."""
    domain = domain.strip().lower()
    if "xn--" in domain:
        try:
            return idna.decode(domain)
        except idna.IDNAError:
            pass
    return domain


_NOT_IN_DOMAINS = re.compile(r"[^\w.-]|_")


def _cleaned(domain: str) -> str:
    """``domain`` without what can never be in one: stray characters, a comma for a dot, empty
    labels, dots at the ends. A hyphen at an end stays: it is where part of a name was left out
    (-online.de), not a stray key."""
    text = _NOT_IN_DOMAINS.sub("", domain.replace(",", "."))
    return re.sub(r"\.{2,}", ".", text).strip(".")


def _has_real_ending(domain: str) -> bool:
    return "." in domain and domain.rpartition(".")[2] in TLDS


def _dot_shifts(domain: str) -> Iterator[str]:
    """``domain`` with one dot moved a letter left or right (gmailc.om, gmai.lcom)."""
    for i, letter in enumerate(domain):
        if letter != ".":
            continue
        if i >= 2 and domain[i - 1] != ".":
            yield f"{domain[:i - 1]}.{domain[i - 1]}{domain[i + 1:]}"
        if i + 2 < len(domain) and domain[i + 1] != ".":
            yield f"{domain[:i]}{domain[i + 1]}.{domain[i + 2:]}"


def _dot_restored(domain: str) -> Iterator[str]:
    """``domain`` with one more dot in its first label (gmxde, hotmailco.uk)."""
    first_label_end = domain.find(".") % (len(domain) + 1)
    for i in range(1, first_label_end):
        yield f"{domain[:i]}.{domain[i:]}"


def _dotless_readings(domain: str) -> Iterator[str]:
    """A domain typed without its last dot (gmailcom, hotmailcouk), read with it put back."""
    for size in range(3, 6):
        if len(domain) > size + 1:
            yield f"{domain[:-size]}.{domain[-size:]}"


class DomainSuggester:
    """Suggests corrections of mistyped domains. Build it once per list of extra known domains:
    the built-in providers' indexes are shared, the extra domains get their own."""

    def __init__(self, known: Iterable[str] = ()):
        builtin = _builtin_mailboxes()
        extra = {_normalized(domain) for domain in known} - builtin.domains
        self._mailboxes = [builtin]
        if extra:
            ranked = ((domain, EXTRA_DOMAIN_RANK, True) for domain in extra)
            self._mailboxes.append(_Mailboxes(ranked))

    def is_known(self, domain: str) -> bool:
        return any(domain in mailboxes.domains for mailboxes in self._mailboxes)

    def suggest(self, domain: str, *, domain_unknown: bool = False) -> DomainSuggestion | None:
        """The domain the sender probably meant, or None when ``domain`` should be left alone.

        ``domain_unknown``: mail to ``domain`` bounced because it does not exist ("host
        unknown", "no such domain"). It is then no real domain that a correction could wrong,
        so slips too big for a domain that may exist are accepted (hmail.com, cox.bet); a close
        runner-up still means no suggestion. A known domain is never corrected, whatever the
        bounce said: it was delivered to."""
        typed = _normalized(domain)
        if not typed or self.is_known(typed):
            return None
        cleaned = _cleaned(typed)
        if not cleaned:
            return None
        cost = 0 if cleaned == typed else CLEANED
        candidates = _Candidates()
        if cost and self.is_known(cleaned):
            candidates.add(cleaned, cost, _PROVIDER)
        elif _has_real_ending(cleaned):
            if cost:
                candidates.add(cleaned, cost + ending_prior(cleaned.rpartition(".")[2]), _REPAIR)
            self._fix_name(cleaned, cost, candidates, domain_unknown)
        else:
            self._fix_broken(cleaned, cost, candidates)
        return candidates.best()

    def _fix_name(
        self, domain: str, cost: int, candidates: _Candidates, domain_unknown: bool = False
    ) -> None:
        """Corrections of a domain whose ending is real: only single typing errors towards a
        known domain, and a repeated ending (looser when the domain is known not to exist)."""
        labels = domain.split(".")
        if len(labels) >= 3 and labels[-1] == labels[-2]:
            fixed = ".".join(labels[:-1])
            kind = _PROVIDER if self.is_known(fixed) else _REPAIR
            candidates.add(fixed, cost + ENDING_REPEATED, kind)
        for shifted in _dot_shifts(domain):
            if self.is_known(shifted):
                candidates.add(shifted, cost + DOT_MOVED, _PROVIDER)
        # A dot left out before a country's second level: hotmailco.uk. Short names glued to
        # one (liveco.uk) read as company names of their own.
        self._restore_dot(domain, cost, candidates, shortest_name=1 if domain_unknown else 5)
        parts = split_public_suffix(domain)
        if parts is None or not parts[0]:
            return
        name, ending = parts
        for mailboxes in self._mailboxes:
            # A typo in the name, same ending: gmial.com, hotmial.fr.
            for candidate in mailboxes.names.near(name) - {name}:
                rank = mailboxes.endings[candidate].get(ending)
                if rank is not None:
                    score = typing_cost(name, candidate) + rank_prior(rank)
                    fits = name_fits(name, candidate, score, rank) or (
                        domain_unknown and score <= UNKNOWN_NAME_BUDGET)
                    candidates.add(f"{candidate}.{ending}", cost + score, _PROVIDER, fits)
            # A letter left out of a provider's ending turns it into another real one: gmail.co.
            own_endings = mailboxes.endings.get(name, {})
            for real_ending in mailboxes.all_endings.near(ending) & own_endings.keys() - {ending}:
                score = typing_cost(ending, real_ending, first_letter_matters=False)
                fits = (len(real_ending) == len(ending) + 1 and score <= DROPPED) or (
                    domain_unknown and score <= UNKNOWN_ENDING_BUDGET)
                score += cost + mailboxes.ending_prior(name, real_ending)
                candidates.add(f"{name}.{real_ending}", score, _PROVIDER, fits)

    def _fix_broken(self, domain: str, cost: int, candidates: _Candidates) -> None:
        """Corrections of a domain without a real ending: it is wrong, so repair the ending of
        any domain, and correct the name towards a known domain when it is close."""
        if "." not in domain:
            for mailboxes in self._mailboxes:
                endings = mailboxes.endings.get(domain)
                if endings:
                    main_ending = min(endings, key=endings.__getitem__)
                    candidates.add(f"{domain}.{main_ending}", cost + ENDING_MISSING, _PROVIDER)
            for reading in _dotless_readings(domain):
                self._read(reading, cost + SEPARATOR, candidates)
            self._restore_dot(domain, cost, candidates, shortest_name=1)
        for shifted in _dot_shifts(domain):
            if self.is_known(shifted):
                candidates.add(shifted, cost + DOT_MOVED, _PROVIDER)
        labels = domain.split(".")
        for size in (1, 2):
            if len(labels) > size:
                name, ending = ".".join(labels[:-size]), ".".join(labels[-size:])
                self._fix_ending(name, ending, cost, candidates)

    def _restore_dot(
        self, domain: str, cost: int, candidates: _Candidates, shortest_name: int
    ) -> None:
        """Known domains that ``domain`` is with a dot left out of its first label (gmxde)."""
        for restored in _dot_restored(domain):
            if restored.find(".") >= shortest_name and self.is_known(restored):
                candidates.add(restored, cost + SEPARATOR, _PROVIDER)

    def _read(self, domain: str, cost: int, candidates: _Candidates) -> None:
        """Consider one reading of a dotless domain."""
        if self.is_known(domain):
            candidates.add(domain, cost, _PROVIDER)
        elif _has_real_ending(domain):
            score = cost + ending_prior(domain.rpartition(".")[2])
            candidates.add(domain, score, _REPAIR, score <= BROKEN_ENDING_BUDGET)
            self._fix_name(domain, cost, candidates)
        else:
            labels = domain.split(".")
            self._fix_ending(".".join(labels[:-1]), labels[-1], cost, candidates)

    def _fix_ending(self, name: str, ending: str, cost: int, candidates: _Candidates) -> None:
        """Corrections of ``name.ending`` where ``ending`` is not real."""
        if not name:
            return
        if self.is_known(name):
            candidates.add(name, cost + LABEL_ADDED, _PROVIDER)
        ending_scores: dict[str, int] = {}  # providers share endings (co.uk, fr, ...)
        for mailboxes in self._mailboxes:
            near_endings = mailboxes.all_endings.near(ending)
            for candidate in mailboxes.names.near(name):
                endings = mailboxes.endings[candidate]
                # Also the provider's endings as long as the typed one, however far: two
                # neighbouring keys (.cin for .com) are as likely a slip as one arbitrary letter.
                reachable_endings = [
                    real_ending for real_ending in endings
                    if real_ending in near_endings or len(real_ending) == len(ending)
                ]
                if not reachable_endings:
                    continue
                name_score = typing_cost(name, candidate)
                for real_ending in reachable_endings:
                    if real_ending not in ending_scores:
                        ending_scores[real_ending] = cost + typing_cost(
                            ending, real_ending, first_letter_matters=False
                        )
                    ending_score = ending_scores[real_ending]
                    rank = endings[real_ending]
                    fits = name_score == 0 or name_fits(
                        name, candidate, name_score + rank_prior(rank), rank
                    )
                    candidates.add(
                        f"{candidate}.{real_ending}",
                        name_score + ending_score + mailboxes.ending_prior(candidate, real_ending),
                        _PROVIDER,
                        fits and ending_score <= BROKEN_ENDING_BUDGET,
                    )
        for real_ending in _repair_endings().near(ending):
            score = cost + typing_cost(ending, real_ending, first_letter_matters=False)
            score += ending_prior(real_ending)
            candidates.add(f"{name}.{real_ending}", score, _REPAIR, score <= BROKEN_ENDING_BUDGET)
