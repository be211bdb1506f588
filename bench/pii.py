"""Benchmark (issue 25, item 1): personal-data scrubbing on a planted corpus, genloom beside Presidio.

The corpus: `--docs` documents of about 1 kB, each of Faker sentences in one of `LOCALES` (seeded), with one
to three planted items of random kinds at known offsets, written in the formats people write them in:
- e-mail: `email`, `company_email`, `free_email` of the document's locale;
- phone: `phone_number` of the document's locale (Faker's own formats: +CC, (0), dashes, dots, spaces,
  extensions, bare national digits);
- IBAN: `iban` of the locale (its country), compact or in groups of four;
- card: `credit_card_number` of every card type the locale's Faker knows, bare or grouped by spaces or dashes;
- SSN: `ssn` (en_US), with dashes, spaces, or bare after the word "SSN";
- IP: `ipv4` (public and private) and `ipv6`;
- URL: `url` and `uri`, some with a query string;
and, in every document, non-personal numbers that look alike: dates in five formats, times, prices,
percentages, version strings, postcodes, years, order numbers, decimals, coordinates, ISBN-13s and
street addresses. Each planted item sits in a short template sentence, often followed by punctuation.

Scoring, the same for both tools: a planted item is found when spans of its kind reported by the tool
cover at least 80% of its characters; a reported span is a true positive when at least half of it lies
in a planted item of its kind, else a false positive (a reported URL inside an e-mail address is one).
Speed: wall time over the whole corpus, per 1 kB of text, one thread.

Peer: Microsoft Presidio's predefined pattern recognizers (presidio-analyzer), called directly with no NLP
engine (`analyze(text, entities, nlp_artifacts=None)`): its AnalyzerEngine needs a spaCy model, which is
not installable offline here, and the model only adds context words to the same patterns' scores. Every
result is kept (AnalyzerEngine's default score threshold is 0).

    OMP_NUM_THREADS=1 python bench/pii.py --docs 3000

Needs the `bench-responsible` extra: `pip install -e ".[bench-responsible]"`.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import update_results
from genloom.data.pii import KINDS, Scrubber

LOCALES = [
    "en_US", "en_GB", "en_CA", "en_AU", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL",
    "pt_BR", "pl_PL", "sv_SE", "ja_JP", "ru_RU", "zh_CN", "da_DK", "fi_FI", "cs_CZ", "tr_TR",
]  # fmt: skip
TEMPLATES = {
    "email": ["Write to {x}.", "Contact: {x}", "(email {x})", "send it to {x}, please", "<{x}>"],
    "phone": ["Call {x}.", "Phone: {x}", "tel. {x}", "or ring {x} after six", "(mobile {x})"],
    "iban": ["IBAN: {x}", "Pay into {x}.", "account {x}, please"],
    "card": ["Card number {x}.", "charged to {x}", "card: {x}"],
    "ssn": ["SSN {x}", "social security number {x}.", "her SSN is {x}"],
    "ip": ["from {x}.", "host {x} is down", "(ip {x})", "connect to {x}"],
    "url": ["See {x}.", "docs at {x}", "({x})", "link: {x}"],
}
PRESIDIO_KIND = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "IBAN_CODE": "iban",
    "CREDIT_CARD": "card",
    "US_SSN": "ssn",
    "IP_ADDRESS": "ip",
    "URL": "url",
}


def grouped(digits: str, sizes: list[int], sep: str) -> str:
    out, at = [], 0
    for size in sizes:
        out.append(digits[at : at + size])
        at += size
    if at < len(digits):
        out.append(digits[at:])
    return sep.join(p for p in out if p)


def planted_item(kind: str, fake, rng: random.Random) -> str:  # type: ignore[no-untyped-def]
    from faker import Faker

    if kind == "email":
        return rng.choice([fake.email, fake.company_email, fake.free_email])()
    if kind == "phone":
        return fake.phone_number()
    if kind == "iban":
        iban = fake.iban()
        return grouped(iban, [4] * 9, " ") if rng.random() < 0.5 else iban
    if kind == "card":
        provider = next(x for x in fake.providers if "credit_card" in type(x).__module__)
        number = fake.credit_card_number(card_type=rng.choice(sorted(provider.credit_card_types)))
        style = rng.random()
        if style < 0.4:
            return number
        sep = " " if style < 0.7 else "-"
        amex = len(number) == 15 and number[:2] in ("34", "37")
        sizes = [4, 6, 5] if amex else [4, 6, 4] if len(number) == 14 else [4, 4, 4, 4, 4]
        return grouped(number, sizes, sep)
    if kind == "ssn":
        us = Faker("en_US")
        us.seed_instance(rng.randrange(2**31))
        ssn = us.ssn()
        style = rng.random()
        return ssn.replace("-", " ") if style < 0.2 else ssn.replace("-", "") if style < 0.3 else ssn
    if kind == "ip":
        return fake.ipv6() if rng.random() < 0.4 else rng.choice([fake.ipv4, fake.ipv4_private, fake.ipv4_public])()
    if kind == "url":
        url = rng.choice([fake.url, fake.uri])()
        return url + f"?id={rng.randrange(1000)}&q={fake.word()}" if rng.random() < 0.2 else url
    raise ValueError(kind)


def distractors(fake, rng: random.Random) -> list[str]:  # type: ignore[no-untyped-def]
    """Numbers that are not personal data, in sentences."""
    d = fake.date_object()
    return [
        f"On {d.isoformat()} the shop opened.",
        f"Due {d.strftime('%d.%m.%Y')}, or {d.strftime('%m/%d/%Y')}, or {d.strftime('%d/%m/%y')}.",
        f"It started at {fake.time()} and cost ${rng.randrange(1, 99999):,}.{rng.randrange(100):02d}.",
        f"Growth was {rng.uniform(0, 100):.1f}% in {rng.randrange(1950, 2030)}.",
        f"Version {rng.randrange(10)}.{rng.randrange(30)}.{rng.randrange(300)} fixed order #{rng.randrange(10**4, 10**6)}.",
        f"Postcode {fake.postcode()}, {fake.street_address()}.",
        f"Pi is about {rng.uniform(3, 4):.5f}; location {fake.latitude()}, {fake.longitude()}.",
        f"ISBN {fake.isbn13()}.",
        f"We sold {rng.randrange(10**3, 10**7):,} units.",
    ]


def make_corpus(n_docs: int, seed: int) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Documents with the (start, end, kind) of every planted item."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = {}
    for locale in LOCALES:
        f = Faker(locale)
        f.seed_instance(seed + len(fakers))
        fakers[locale] = f
    docs = []
    for _ in range(n_docs):
        fake = fakers[rng.choice(LOCALES)]
        pieces: list[tuple[str, str | None, str]] = [(s, None, "") for s in distractors(fake, rng)]
        rng.shuffle(pieces)
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(KINDS)
            template = rng.choice(TEMPLATES[kind])
            pieces.insert(rng.randrange(len(pieces) + 1), (template, planted_item(kind, fake, rng), kind))
            pieces.insert(rng.randrange(len(pieces) + 1), (fake.sentence(nb_words=12), None, ""))
        text, spans = "", []
        for template, item, kind in pieces:
            if text:
                text += " "
            if item is None:
                text += template
                continue
            before, after = template.split("{x}")
            start = len(text) + len(before)
            text += before + item + after
            spans.append((start, start + len(item), kind))
        while len(text.encode()) < 900:
            text += " " + fake.sentence(nb_words=10)
        docs.append((text, spans))
    return docs


def presidio_spans():  # type: ignore[no-untyped-def]
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UrlRecognizer,
        UsSsnRecognizer,
    )

    recognizers = [
        EmailRecognizer(),
        PhoneRecognizer(),
        IbanRecognizer(),
        CreditCardRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
        UrlRecognizer(),
    ]

    def find(text: str) -> list[tuple[int, int, str]]:
        out = []
        for r in recognizers:
            for res in r.analyze(text, r.supported_entities, None):
                if res.entity_type in PRESIDIO_KIND:
                    out.append((res.start, res.end, PRESIDIO_KIND[res.entity_type]))
        return out

    return find


def score(docs, found: list[list[tuple[int, int, str]]]) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    hit, total, tp, fp = Counter(), Counter(), Counter(), Counter()
    for (_, planted), spans in zip(docs, found, strict=True):
        covered = defaultdict(set)
        for s, e, k in spans:
            covered[k].update(range(s, e))
        for s, e, k in planted:
            total[k] += 1
            hit[k] += len(covered[k] & set(range(s, e))) >= 0.8 * (e - s)
        for s, e, k in spans:
            inside = max((len(set(range(s, e)) & set(range(ps, pe))) for ps, pe, pk in planted if pk == k), default=0)
            if inside >= 0.5 * (e - s):
                tp[k] += 1
            else:
                fp[k] += 1
    out = {}
    for k in KINDS:
        out[k] = {
            "n": total[k],
            "recall": hit[k] / total[k] if total[k] else float("nan"),
            "precision": tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] else float("nan"),
            "fp": fp[k],
        }
    return out


def timed(find, docs) -> tuple[list[list[tuple[int, int, str]]], float]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    found = [find(text) for text, _ in docs]
    return found, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--show-misses", type=int, default=0, help="print this many misses and false positives")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    docs = make_corpus(args.docs, args.seed)
    kb = sum(len(t.encode()) for t, _ in docs) / 1000
    scrubber = Scrubber()
    scrubber.spans(docs[0][0])  # imports and first-call costs out of the timing
    ours, ours_s = timed(scrubber.spans, docs)
    load_ours = os.getloadavg()[0]
    presidio = presidio_spans()
    presidio(docs[0][0])
    theirs, theirs_s = timed(presidio, docs)
    load_theirs = os.getloadavg()[0]
    a, b = score(docs, ours), score(docs, theirs)
    if args.show_misses:
        shown = 0
        for (text, planted), spans in zip(docs, ours, strict=True):
            for s, e, k in planted:
                if not any(ss <= s and se >= e and sk == k for ss, se, sk in spans):
                    print("MISS", k, repr(text[s:e]), [(text[ss:se], sk) for ss, se, sk in spans if ss < e and se > s])
                    shown += 1
            for ss, se, sk in spans:
                if not any(ps < se and pe > ss and pk == sk for ps, pe, pk in planted):
                    print("FP", sk, repr(text[max(0, ss - 15) : se + 15]), repr(text[ss:se]))
                    shown += 1
            if shown >= args.show_misses:
                break
    rows = [
        "| kind | items | genloom recall | genloom precision | Presidio recall | Presidio precision |",
        "|---|---|---|---|---|---|",
    ]
    for k in KINDS:
        rows.append(
            f"| {k} | {a[k]['n']} | {a[k]['recall']:.4f} | {a[k]['precision']:.4f} ({a[k]['fp']} FP) | "
            f"{b[k]['recall']:.4f} | {b[k]['precision']:.4f} ({b[k]['fp']} FP) |"
        )
    ms_ours, ms_theirs = 1000 * ours_s / kb, 1000 * theirs_s / kb
    worst_recall = min(a[k]["recall"] for k in KINDS)
    worst_precision = min(a[k]["precision"] for k in KINDS)
    verdict = (
        f"Bars (recall >= 0.99 per kind, precision >= 0.95, <= 2 ms per kB): worst recall {worst_recall:.4f} "
        f"({'met' if worst_recall >= 0.99 else 'NOT met'}), worst precision {worst_precision:.4f} "
        f"({'met' if worst_precision >= 0.95 else 'NOT met'}), {ms_ours:.3f} ms per kB "
        f"({'met' if ms_ours <= 2 else 'NOT met'})."
    )
    body = "\n".join(
        [
            f"`OMP_NUM_THREADS=1 python bench/pii.py --docs {args.docs} --seed {args.seed}` on "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared, one thread; load average "
            f"{load_ours:.2f} after genloom's pass, {load_theirs:.2f} after Presidio's.",
            "",
            f"Planted corpus: {args.docs} Faker documents ({kb:,.0f} kB) in {len(LOCALES)} locales "
            f"({', '.join(LOCALES)}), with non-personal look-alikes in every document (see the bench's docstring "
            "for formats and scoring). Peer: Presidio's pattern recognizers (presidio-analyzer "
            f"{_version('presidio-analyzer')}) called directly without an NLP engine (its spaCy model is not "
            "installable offline), every result kept.",
            "",
            *rows,
            "",
            f"Speed: genloom {ms_ours:.3f} ms per kB, Presidio {ms_theirs:.3f} ms per kB (same documents, same process).",
            "",
            verdict,
        ]
    )
    print(body)
    if not args.no_write:
        update_results("pii", "Personal data scrubbing: planted Faker corpus, genloom vs Presidio (issue 25)", body)


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
