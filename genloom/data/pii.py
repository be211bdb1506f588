"""Personal data scrubbing: e-mail addresses, phone numbers, IBANs, payment cards, US SSNs, IP addresses and
URLs in text become typed placeholders (`<EMAIL>`, `<PHONE>`, ...), counted per kind.

Each kind is a broad candidate pattern followed by a validator, so a number is replaced only when it is
one of these things, not when it merely looks like it:

- e-mail: local part and domain checked (no empty or dotted-edge parts, an alphabetic top-level domain);
- URL: `scheme://` or `www.` with a host that is a domain with an alphabetic top-level domain, an IP
  address or `localhost` (trailing sentence punctuation is left in the text);
- IBAN: two letters, two check digits, 11-30 letters and digits, and the ISO 13616 mod-97 check;
- payment card: 13-19 digits in the groupings cards are written in, an issuer prefix (Visa, Mastercard,
  American Express, Discover, JCB, Diners Club, Maestro, UnionPay, ...) and the Luhn check (`python-stdnum`);
- US SSN: `AAA-GG-SSSS` (dashes or spaces) with the SSA's rules: area not 000, 666 or 900-999, group not
  00, serial not 0000, and the numbers the SSA lists as invalid (`python-stdnum`); nine bare digits only
  after the words SSN or social security;
- IP: IPv4 and IPv6 addresses that Python's `ipaddress` accepts (so 999.1.1.1 is not one);
- phone: 7-15 digits with the separators phone numbers are written with, a number libphonenumber
  (`phonenumbers`) finds possible for its country code or for one of `PHONE_REGIONS`; dates, times,
  decimals, thousands-grouped amounts, Brazilian postcodes and ISBN-13s are not phone numbers, nor is a
  number right after "postcode", "zip", "ISBN", "order", "invoice", "ref" and the like.

Kinds are scrubbed in the order of `KINDS`: a URL's host is not also an IP address, a card number is not
also a phone number. Placeholders hold no digits, so no later kind re-reads them. Why not one library
for all of it: Microsoft Presidio's pattern recognizers do the same job with bare patterns and a
confidence score (bench/pii.py measures both on the same corpus); libphonenumber's own matcher scans
every position of the text (slow for a corpus) and only finds numbers valid in one region at a time.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

KINDS = ("url", "email", "iban", "card", "ssn", "ip", "phone")  # also the order they are scrubbed in
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}
# national formats tried for a number without a +country code (libphonenumber region codes)
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "JP", "IN", "PL", "SE", "RU", "CN", "AU", "CA")

# ---- candidates and validators ------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+'-]{1,64}@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?<![@\w.-])(?:(?:https?|ftps?)://|www\.)[^\s<>\"'`]+", re.IGNORECASE)  # not inside an e-mail
_URL_TRAILING = ".,;:!?'\"”’)]}>"
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,31}\b")
_CARD = re.compile(r"(?<![\d.,+-])\d(?:[ -]?\d){11,18}(?![\d.,]\d)")
_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_BARE = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?)?)(?:\W{1,3}(?:is|was|no\.?|number|#)){0,2}\W{0,5}(\d{9})\b"
)
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})(?![\w:]|\.\d)")
_PHONE = re.compile(
    r"(?<![\w+(])(?:\(?(?:\+|00))?\(?\d[\d\s().\-/]{5,22}\d(?:\s*(?:x|ext\.?|#)\s*\d{1,6})?(?![\w.]\d|\w)",
    re.IGNORECASE,
)
_DATE_LIKE = re.compile(
    r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$"  # 2024-05-01, 01.05.2024, 5/1/24
    r"|^\d{1,2}:\d{2}"  # times
)
# words right before a number that say it is something else (a postcode, a book, an order)
_NOT_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:post\s?code|postal(?: code)?|zip(?: code)?|cep|plz|isbn|order|invoice|ref(?:erence)?|"
    r"item|sku|serial)\b\W{0,4}(?:no\.?|number|#)?\W{0,3}$"
)
_GROUPED_AMOUNT = re.compile(r"^\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*(?:[.,]\d{1,2})?$")  # 1,234,567 or 1.234.567,89
# issuer identification number prefixes and lengths (ISO/IEC 7812 as the card networks publish them)
_CARD_PREFIXES: tuple[tuple[tuple[int, int], tuple[int, ...]], ...] = (
    ((4, 4), (13, 16, 19)),  # Visa
    ((51, 55), (16,)),  # Mastercard
    ((2221, 2720), (16,)),  # Mastercard 2-series
    ((34, 34), (15,)),  # American Express
    ((37, 37), (15,)),
    ((6011, 6011), (16, 19)),  # Discover
    ((644, 649), (16, 19)),
    ((65, 65), (16, 19)),
    ((3500, 3599), (15, 16, 17, 18, 19)),  # JCB (3528-3589 issued; Faker writes any 35xx)
    ((1800, 1800), (15,)),  # JCB (old 15-digit ranges)
    ((2131, 2131), (15,)),
    ((300, 305), (14, 16, 19)),  # Diners Club
    ((36, 36), (14, 16, 19)),
    ((38, 39), (14, 16, 19)),
    ((50, 50), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    ((56, 69), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro, UnionPay (62), RuPay (60, 65), ...
    ((604, 604), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro (0604...)
    ((2200, 2204), (16, 17, 18, 19)),  # Mir
    ((81, 82), (16, 17, 18, 19)),  # UnionPay, RuPay
)


def _valid_domain(domain: str) -> bool:
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or not labels[-1].isalpha() or len(labels[-1]) < 2:
        return False
    return all(0 < len(label) <= 63 and not label.startswith("-") and not label.endswith("-") for label in labels)


def _email(match: str) -> bool:
    local, _, domain = match.rpartition("@")
    if not local or local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return _valid_domain(domain)


def _trim_url(match: str) -> str:
    """A URL without the punctuation that ends the sentence around it (a closing bracket it opened stays)."""
    while match and match[-1] in _URL_TRAILING:
        if match[-1] == ")" and match.count("(") >= match.count(")"):
            break
        match = match[:-1]
    return match


def _url(match: str) -> bool:
    full = match if "://" in match else "http://" + match
    try:
        host = urlsplit(full).hostname
    except ValueError:  # an unbalanced [ in the netloc
        return False
    if not host:
        return False
    if host == "localhost" or _valid_domain(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _iban(match: str) -> bool:
    """ISO 13616: two letters, two check digits, 11-30 letters and digits, and the whole (moved to the end,
    letters as 10-35) is 1 mod 97. The per-country length is not required: the mod-97 check already refuses
    99% of look-alikes, and IBAN-shaped account numbers of a wrong length are still account numbers."""
    compact = match.replace(" ", "")
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _card(match: str) -> bool:
    from stdnum import luhn

    groups = re.split(r"[ -]", match)
    if len(groups) > 1 and not (all(3 <= len(g) <= 6 for g in groups[:-1]) and 1 <= len(groups[-1]) <= 6):
        return False  # cards are written in groups of 4 (or Amex's 4-6-5), not as arbitrary digit runs
    digits = "".join(groups)
    for (low, high), lengths in _CARD_PREFIXES:
        width = len(str(low)) + (1 if low == 604 else 0)  # 0604: a leading zero
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return bool(luhn.is_valid(digits))
    return False


def _ssn(digits: str) -> bool:
    from stdnum.us import ssn

    return bool(ssn.is_valid(digits))  # area, group and serial rules, and the SSA's list of invalid numbers


def _ip(match: str) -> bool:
    if not any(c.isalnum() for c in match):  # "::" alone (C++'s scope operator in prose) is not an address here
        return False
    try:
        ipaddress.ip_address(match)
    except ValueError:
        return False
    return True


def _isbn13(digits: str) -> bool:
    from stdnum import isbn

    return len(digits) == 13 and digits[:3] in ("978", "979") and bool(isbn.is_valid(digits))


def _phone(match: str, before: str = "") -> bool:
    import phonenumbers

    if _NOT_PHONE_CONTEXT.search(before):  # "postcode 700-3042", "ISBN 0-306-40615-2", "order 12345678"
        return False
    number = re.split(r"(?i)\s*(?:x|ext\.?|#)\s*\d", match)[0].strip()
    digits = re.sub(r"\D", "", number)
    if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(number) or _GROUPED_AMOUNT.match(number):
        return False
    if re.search(r"\.\s", number):  # a sentence ends inside it
        return False
    if re.fullmatch(r"\d+\.\d+|\d{5}-\d{3}|\d{3}-\d{2}-\d{4}", number) or _isbn13(digits):
        return False  # a decimal, a Brazilian postcode (CEP), the SSN shape (an invalid SSN), an ISBN-13
    if number.count("(") != number.count(")"):
        return False
    number = number.lstrip("(") if number.startswith("(+") or number.startswith("(00") else number
    international = number.startswith("+") or number.startswith("00")
    text = "+" + number[2:] if number.startswith("00") else number
    regions: Sequence[str | None] = (None,) if international else PHONE_REGIONS
    for region in regions:
        try:
            parsed = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed):
            return True
    if international:  # "00" may also be a national number's leading zeros (Faker writes such numbers)
        return any(_national_possible(digits, r) for r in PHONE_REGIONS)
    return False


def _national_possible(digits: str, region: str) -> bool:
    import phonenumbers

    try:
        return bool(phonenumbers.is_possible_number(phonenumbers.parse(digits, region)))
    except phonenumbers.NumberParseException:
        return False


# ---- the scrubber ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    trim: Callable[[str], str] | None = None


_DETECTORS: dict[str, _Kind] = {
    "url": _Kind(_URL, _url, _trim_url),
    "email": _Kind(_EMAIL, _email),
    "iban": _Kind(_IBAN, _iban),
    "card": _Kind(_CARD, _card),
    "ip": _Kind(_IPV4, _ip),  # IPv6 is a second pattern of the same kind (below)
}


def parse_kinds(setting: bool | Iterable[str], field: str = "data.scrub_pii") -> tuple[str, ...]:
    """The kinds a `scrub_pii` setting names: True is every kind, False or [] none; an unknown name is a
    `ValueError` naming `field` and the valid kinds. Items may carry brackets or quotes from a command line."""
    if isinstance(setting, bool):
        return KINDS if setting else ()
    if isinstance(setting, str):
        if setting.strip().lower() in ("true", "yes", "on", "all"):
            return KINDS
        if setting.strip().lower() in ("false", "no", "off", ""):
            return ()
        setting = setting.split(",")
    kinds = []
    for item in setting:
        name = str(item).strip().strip("[]\"' ").lower()
        if not name:
            continue
        if name not in KINDS:
            raise ValueError(f"{field}: unknown kind {name!r}; expected true, false or a list of: {', '.join(KINDS)}")
        kinds.append(name)
    return tuple(k for k in KINDS if k in kinds)  # the scrubbing order, each once


class Scrubber:
    """Replaces the personal data of `kinds` in texts and counts what it replaced (`counts`, per kind)."""

    def __init__(self, kinds: bool | Iterable[str] = KINDS) -> None:
        self.kinds = parse_kinds(kinds if isinstance(kinds, bool | str) else list(kinds), "kinds")
        self.counts: Counter[str] = Counter()

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, kind) of every item found in `text`, in text order (not replaced)."""
        found: list[tuple[int, int, str]] = []
        masked = text
        for kind in self.kinds:
            kept: list[tuple[int, int]] = []
            for start, end in sorted(self._find(kind, masked), key=lambda se: (se[0], se[0] - se[1])):
                if kept and start < kept[-1][1]:  # inside a longer one of the same kind (an IPv4 in an IPv6)
                    continue
                kept.append((start, end))
            for start, end in kept:
                found.append((start, end, kind))
                masked = masked[:start] + "\x00" * (end - start) + masked[end:]  # later kinds do not see it
        return sorted(found)

    def _find(self, kind: str, text: str) -> list[tuple[int, int]]:
        out = []
        if kind == "ssn":
            for m in _SSN.finditer(text):
                if _ssn(m.group(1) + m.group(3) + m.group(4)):
                    out.append(m.span())
            for m in _SSN_BARE.finditer(text):
                if _ssn(m.group(1)):
                    out.append(m.span(1))
            return out
        if kind == "phone":
            for m in _PHONE.finditer(text):
                if _phone(m.group(), text[max(0, m.start() - 30) : m.start()]):
                    out.append(m.span())
            return out
        detector = _DETECTORS[kind]
        patterns = (detector.pattern, _IPV6) if kind == "ip" else (detector.pattern,)
        for pattern in patterns:
            for m in pattern.finditer(text):
                value = detector.trim(m.group()) if detector.trim else m.group()
                if value and detector.valid(value):
                    out.append((m.start(), m.start() + len(value)))
                elif kind == "iban" and " " in value:  # a grouped IBAN may have swallowed the next word
                    while " " in value:
                        value = value.rsplit(" ", 1)[0]
                        if _iban(value):
                            out.append((m.start(), m.start() + len(value)))
                            break
        return out

    def __call__(self, text: str) -> str:
        """`text` with every item replaced by its kind's placeholder."""
        if not text:
            return text
        pieces = []
        at = 0
        for start, end, kind in self.spans(text):
            pieces.append(text[at:start])
            pieces.append(PLACEHOLDERS[kind])
            self.counts[kind] += 1
            at = end
        pieces.append(text[at:])
        return "".join(pieces)

    def report(self) -> dict[str, int]:
        """Replacements per kind so far (every scrubbed kind listed, zeros included)."""
        return {kind: self.counts[kind] for kind in self.kinds}


def scrub(text: str, kinds: bool | Iterable[str] = True) -> str:
    """`text` with the personal data of `kinds` (True: every kind) replaced by typed placeholders."""
    return Scrubber(parse_kinds(kinds, "kinds"))(text)
