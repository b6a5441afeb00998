"""The email check and the domain-typo suggester: pure functions, tested directly."""
from __future__ import annotations

import csv
from pathlib import Path

import dns.resolver
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk import validation
from helpdesk.known_domains import MAILBOX_PROVIDERS, TLDS, split_public_suffix
from helpdesk.validation import DomainSuggester, check_email, suggest_domain, typing_cost

DEV_CASES = Path(__file__).resolve().parent / "data/typo_dev.csv"  # the shared development set
PUBLIC_CASES = Path(__file__).resolve().parents[1] / "bench/data/typo_public.csv"
HELDOUT_CASES = Path(__file__).resolve().parents[1] / "bench/data/typo_heldout.csv"
PUBLIC_SUFFIX_LIST = Path("/usr/share/publicsuffix/public_suffix_list.dat")
BUILTIN_DOMAINS = sorted({domain for provider in MAILBOX_PROVIDERS for domain in provider})


def read_cases(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as lines:
        rows = csv.DictReader(line for line in lines if not line.startswith("#"))
        return [(row["typed_domain"], row["expected"].strip()) for row in rows]


def suggested(domain: str, known=()) -> str | None:
    suggestion = suggest_domain(domain, known)
    return suggestion.domain if suggestion else None


def test_every_dev_case_is_answered_as_expected():
    wrong = [
        (typed, expected, suggested(typed))
        for typed, expected in read_cases(DEV_CASES)
        if suggested(typed) != (expected or None)
    ]
    assert wrong == []


def test_no_real_domain_of_the_public_cases_is_changed():
    real = [typed for typed, expected in read_cases(PUBLIC_CASES) if not expected]
    assert len(real) > 100
    assert {domain: suggested(domain) for domain in real if suggested(domain)} == {}


def test_public_typos_are_fixed_or_left_alone_never_wrongly_fixed():
    typos = [(typed, expected) for typed, expected in read_cases(PUBLIC_CASES) if expected]
    answers = {typed: suggested(typed) for typed, _ in typos}
    wrong = {
        typed: answers[typed] for typed, expected in typos if answers[typed] not in (expected, None)
    }
    fixed = sum(answers[typed] == expected for typed, expected in typos)
    assert wrong == {}
    assert fixed / len(typos) >= 0.85


def test_no_real_domain_of_the_heldout_cases_is_changed():
    real = [typed for typed, expected in read_cases(HELDOUT_CASES) if not expected]
    assert len(real) > 80
    assert {domain: suggested(domain) for domain in real if suggested(domain)} == {}


def test_heldout_typos_are_fixed_or_left_alone_never_wrongly_fixed():
    typos = [(typed, expected) for typed, expected in read_cases(HELDOUT_CASES) if expected]
    answers = {typed: suggested(typed) for typed, _ in typos}
    wrong = {
        typed: answers[typed] for typed, expected in typos if answers[typed] not in (expected, None)
    }
    fixed = sum(answers[typed] == expected for typed, expected in typos)
    assert len(typos) > 200
    assert wrong == {}
    assert fixed / len(typos) >= 0.8


def public_suffix_list_private_domains() -> list[str]:
    private = PUBLIC_SUFFIX_LIST.read_text(encoding="utf-8").partition("PRIVATE DOMAINS===")[2]
    rules = (line.strip() for line in private.splitlines())
    return [rule for rule in rules if rule and not rule.startswith("//") and "*" not in rule]


@pytest.mark.skipif(not PUBLIC_SUFFIX_LIST.exists(), reason="no Public Suffix List on this machine")
def test_no_company_domain_of_the_public_suffix_list_is_changed():
    domains = public_suffix_list_private_domains()
    assert len(domains) > 1000
    assert {domain: suggested(domain) for domain in domains if suggested(domain)} == {}


@pytest.mark.parametrize(
    "domain",
    [
        "mailw.com", "proton.me", "pm.me", "ox.ac.uk", "gmx.net", "hotmail.cl", "comcast.com",
        "mail.de", "company.co", "startup.io", "acme.org.uk", "u.washington.edu", "cloud.com",
        "life.com", "aon.com", "ao.com", "gm.com", "web.se", "example.cm", "example.com.co",
        "icloud.com.cn", "gmail.de", "y7mail.com", "earthling.net", "starmail.com",
    ],
)
def test_real_domains_are_left_alone(domain):
    assert suggest_domain(domain) is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("acme-corp.con", "acme-corp.com"),
        ("randomsmallcompany.cmo", "randomsmallcompany.com"),
        ("example.comm", "example.com"),
        ("example.nte", "example.net"),
        ("example.ogr", "example.org"),
        ("acme.co.uj", "acme.co.uk"),
        ("gmailcom", "gmail.com"),
        ("examplecom", "example.com"),
        ("gmail.com.com", "gmail.com"),
        ("acme-corp.com.com", "acme-corp.com"),
        ("example..com", "example.com"),
        ("example,com", "example.com"),
        ("gmail.com.", "gmail.com"),
    ],
)
def test_broken_endings_are_repaired_on_any_domain(typed, expected):
    assert suggested(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("gmail.co", "gmail.com"),
        ("aol.cm", "aol.com"),
        ("gmx.ne", "gmx.net"),
        ("hotmail.couk", "hotmail.co.uk"),
        ("hotmail.co.uj", "hotmail.co.uk"),
        ("gmailc.om", "gmail.com"),
        ("gmail", "gmail.com"),
    ],
)
def test_a_providers_own_ending_is_restored(typed, expected):
    assert suggested(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("gmail.cin", "gmail.com"),  # i next to o, n next to m
        ("comcast.nry", "comcast.net"),
        ("yahoo.xom", "yahoo.com"),
    ],
)
def test_a_providers_ending_two_neighbouring_keys_away_is_restored(typed, expected):
    assert suggested(typed) == expected


@pytest.mark.parametrize("domain", ["comcast.com", "hotmail.cl", "yandex.net", "laposte.fr"])
def test_a_providers_name_with_another_real_ending_is_left_alone(domain):
    assert suggested(domain) is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("otmail.com", "hotmail.com"),
        ("ahoo.com", "yahoo.com"),
        ("ahoo.fr", "yahoo.fr"),
        ("erizon.net", "verizon.net"),
        ("aposte.net", "laposte.net"),
        ("andex.ru", "yandex.ru"),
    ],
)
def test_a_dropped_first_letter_of_a_widely_used_name_is_restored(typed, expected):
    assert suggested(typed) == expected


@pytest.mark.parametrize(
    "domain",
    [
        "cloud.com",  # i-cloud: an initial standing alone leaves a word
        "africa.com",  # i-africa
        "online.de",  # t-online
        "mail.com",  # g-mail
        "range.fr",  # orange starts with a vowel
        "aver.com",  # naver: a five-letter name, not among the most used
        "unbox.com",  # runbox: not widely used
        "osteo.de",  # posteo
    ],
)
def test_a_name_that_is_a_provider_without_its_first_letter_is_left_alone(domain):
    assert suggested(domain) is None


def test_two_small_slips_point_only_at_the_most_used_five_letter_names():
    assert suggested("yahho.com") == "yahoo.com"
    assert suggested("yaahooo.com") == "yahoo.com"
    assert suggested("naaverr.com") is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("gmxde", "gmx.de"),
        ("webde", "web.de"),
        ("yahoofr", "yahoo.fr"),
        ("mailru", "mail.ru"),
        ("hotmailco.uk", "hotmail.co.uk"),
    ],
)
def test_a_dot_left_out_before_a_country_ending_is_restored(typed, expected):
    assert suggested(typed) == expected


def test_a_short_name_glued_to_a_country_level_is_left_alone():
    assert suggested("liveco.uk") is None  # a company may well be called Liveco


def test_a_leading_hyphen_is_not_cleaned_into_another_known_domain():
    assert suggested("-online.de") is None  # t-online.de with its t left out, not online.de


def test_a_close_runner_up_means_no_suggestion():
    # .fe is one neighbouring key from both hotmail.fr and hotmail.de.
    assert suggest_domain("hotmail.fe") is None


def test_typing_errors_cost_less_than_arbitrary_edits():
    arbitrary = typing_cost("gmpil", "gmail")  # p is nowhere near a
    assert typing_cost("gmsil", "gmail") < arbitrary  # s is next to a
    assert typing_cost("gmial", "gmail") < arbitrary  # swapped
    assert typing_cost("gmaill", "gmail") < arbitrary  # doubled
    assert typing_cost("gmai", "gmail") < arbitrary  # dropped
    assert typing_cost("g.mail", "gmail") < arbitrary  # extra dot
    assert typing_cost("fmail", "gmail") > typing_cost("gmsil", "gmail")  # the first letter
    assert typing_cost("gmail", "gmail") == 0


def test_suggestions_are_deterministic():
    fresh = DomainSuggester()
    for typed, _ in read_cases(PUBLIC_CASES):
        assert fresh.suggest(typed) == suggest_domain(typed) == suggest_domain(typed)


@settings(max_examples=300, deadline=None)
@given(
    domain=st.sampled_from(BUILTIN_DOMAINS),
    case=st.sampled_from([str.lower, str.upper, str.title]),
)
def test_a_known_domain_is_never_changed(domain, case):
    assert suggest_domain(f" {case(domain)} ") is None


label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda text: not text.startswith("-") and not text.endswith("-")
)
ascii_tld = st.sampled_from(sorted(tld for tld in TLDS if tld.isascii()))
real_domain = st.builds(lambda name, tld: f"{name}.{tld}", label, ascii_tld)


@settings(max_examples=200, deadline=None)
@given(extra=st.lists(real_domain, min_size=1, max_size=5))
def test_extra_known_domains_are_never_changed(extra):
    for domain in extra:  # not even when a bounce said it does not exist: it was delivered to
        assert suggest_domain(domain, known=extra) is None
        assert suggest_domain(domain, known=extra, domain_unknown=True) is None


@settings(max_examples=300, deadline=None)
@given(domain=st.one_of(real_domain, st.text(max_size=20)))
def test_any_input_gets_a_well_formed_answer(domain):
    for domain_unknown in (False, True):
        suggestion = suggest_domain(domain, domain_unknown=domain_unknown)
        if suggestion is not None:
            assert suggestion.domain != domain.strip().lower()
            assert 0 < suggestion.confidence <= 1
            assert split_public_suffix(suggestion.domain) is not None


def test_extra_known_domains_are_suggested():
    assert suggested("acme-crop.com") is None
    assert suggested("acme-crop.com", known=["acme-corp.com"]) == "acme-corp.com"
    assert suggested("acme-corp.con", known=["acme-corp.com"]) == "acme-corp.com"


def test_an_extra_known_domain_is_not_corrected_towards_a_provider():
    assert suggested("gmial.com") == "gmail.com"
    assert suggested("gmial.com", known=["GMIAL.com"]) is None


def test_check_email_normalises_and_suggests_a_whole_address():
    check = check_email("  Jane.Doe@GMIAL.com ")
    assert check.valid
    assert check.input == "  Jane.Doe@GMIAL.com "
    assert check.normalized == "Jane.Doe@gmial.com"
    assert check.error is None
    assert check.suggestion == "Jane.Doe@gmail.com"
    assert 0 < check.confidence <= 1


def test_check_email_without_a_typo_has_no_suggestion():
    check = check_email("jane@gmail.com")
    assert (check.valid, check.normalized, check.suggestion, check.confidence) == (
        True, "jane@gmail.com", None, None,
    )


def test_check_email_passes_extra_known_domains_on():
    assert check_email("bob@acme-crop.com").suggestion is None
    check = check_email("bob@acme-crop.com", known_domains=["acme-corp.com"])
    assert check.suggestion == "bob@acme-corp.com"


def test_an_invalid_address_still_gets_a_suggestion():
    check = check_email("bob@gmailcom")
    assert not check.valid
    assert check.normalized is None
    assert "period" in check.error
    assert check.suggestion == "bob@gmail.com"
    assert check_email("bob@exa mple.com").suggestion == "bob@example.com"


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("", "@-sign"),
        ("bob", "@-sign"),
        ("bob@", "after the @-sign"),
        ("@example.com", "before the @-sign"),
        ("bob@@example.com", "@-sign"),
        ("bob smith@example.com", "invalid characters before the @-sign: SPACE"),
        ("bob@exa mple.com", "invalid characters: SPACE"),
    ],
)
def test_invalid_syntax_is_explained(address, message):
    check = check_email(address)
    assert not check.valid
    assert check.normalized is None
    assert message in check.error


@pytest.mark.parametrize(
    "address", ["a@localhost", "a@box.local", "a@box.test", "a@x.invalid", "a@x.onion"]
)
def test_reserved_names_are_refused(address):
    check = check_email(address)
    assert not check.valid
    assert check.suggestion is None


def test_internationalised_addresses_are_normalised_to_unicode():
    assert check_email("user@xn--bcher-kva.de").normalized == "user@bücher.de"
    check = check_email("josé@BÜCHER.de")
    assert (check.valid, check.normalized, check.suggestion) == (True, "josé@bücher.de", None)
    assert check_email("josé@bücher.con").suggestion == "josé@bücher.com"
    assert suggested("bücher.de", known=["xn--bcher-kva.de"]) is None


class NoSuchDomain:
    """A DNS resolver that knows no domain at all."""

    def resolve(self, name, record_type):
        raise dns.resolver.NXDOMAIN


def test_deliverability_is_checked_only_when_asked(monkeypatch):
    monkeypatch.setattr(validation, "_dns_resolver", NoSuchDomain)
    assert check_email("bob@nowhere-at-all.com").valid
    check = check_email("bob@nowhere-at-all.com", check_deliverability=True)
    assert not check.valid
    assert "does not exist" in check.error


# --- what mutation testing found unchecked --------------------------------------------------

def test_a_mistyped_ending_after_a_real_domain_is_dropped():
    assert suggested("gmail.com.cmo") == "gmail.com"


def test_every_confidence_is_a_probability():
    for typed, _ in [*read_cases(DEV_CASES), *read_cases(PUBLIC_CASES)]:
        suggestion = suggest_domain(typed)
        if suggestion:
            assert 0 < suggestion.confidence <= 1, (typed, suggestion)


# --- evidence that a domain does not exist ---------------------------------------------------

@pytest.mark.parametrize("typed, intended", [
    ("akol.com", "aol.com"),  # an extra key in a short name
    ("utlook.com", "outlook.com"),  # the first letter left out
    ("wb.de", "web.de"),  # a short name
    ("cox.bet", "cox.net"),  # the provider's own ending, one key off
    ("liveco.uk", "live.co.uk"),  # a dot left out after a short name
])
def test_a_domain_known_not_to_exist_is_corrected_on_looser_terms(typed, intended):
    assert suggested(typed) is None  # it might be a real domain: leave it alone
    assert suggest_domain(typed, domain_unknown=True).domain == intended


def test_the_evidence_never_corrects_a_known_domain_nor_picks_between_close_rivals():
    assert suggest_domain("akol.com", known=["akol.com"], domain_unknown=True) is None
    assert suggest_domain("hmail.com", domain_unknown=True) is None  # gmail.com? mail.com?
    assert suggest_domain("brightmal.com", known=["brightmail.com"],
                          domain_unknown=True).domain == "brightmail.com"
    assert suggest_domain("brightmal.com", known=["brightmail.com", "brightmall.com"],
                          domain_unknown=True) is None


def test_check_email_passes_the_unknown_domains_on():
    assert check_email("ann@akol.com").suggestion is None
    assert check_email("ann@AKOL.com", unknown_domains=["akol.com"]).suggestion == "ann@aol.com"
    assert check_email("ann@akol.com", known_domains=["akol.com"],
                       unknown_domains=["akol.com"]).suggestion is None
