"""Text as it should be spoken: numbers, money, dates, times, abbreviations and emoji rewritten; long lines split.

Both offline voices (and OpenAI) read digits in their own ways; normalising here first makes every voice say the
same words, so word timings match the subtitles and the cache key is the text actually spoken.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth"}
_ORDINAL_IRREGULAR |= {"nine": "ninth", "twelve": "twelfth"}
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_MONTH_ABBR = {m[:3].lower(): m for m in MONTHS}

# Said in full; the key includes its period. Titles come before a name, so "St." before a capital is "Saint".
ABBREVIATIONS = {
    "Dr.": "Doctor",
    "Mr.": "Mister",
    "Mrs.": "Missus",
    "Ms.": "Miz",
    "Prof.": "Professor",
    "Jr.": "Junior",
    "Sr.": "Senior",
    "Mt.": "Mount",
    "Ave.": "Avenue",
    "Rd.": "Road",
    "vs.": "versus",
    "etc.": "et cetera",
    "e.g.": "for example",
    "i.e.": "that is",
    "approx.": "approximately",
    "min.": "minutes",
    "hrs.": "hours",
    "a.m.": "a m",
    "p.m.": "p m",
}
# Units said only after a number ("5 km" but not "km" alone).
UNITS = {
    "km": "kilometers",
    "kg": "kilograms",
    "cm": "centimeters",
    "mm": "millimeters",
    "mph": "miles per hour",
    "km/h": "kilometers per hour",
    "lb": "pounds",
    "lbs": "pounds",
    "oz": "ounces",
    "ft": "feet",
    "hr": "hours",
    "hrs": "hours",
    "min": "minutes",
    "mins": "minutes",
    "sec": "seconds",
    "GB": "gigabytes",
    "MB": "megabytes",
}
_DEGREES = {"C": " degrees Celsius", "F": " degrees Fahrenheit", "": " degrees"}
SYMBOLS = {"&": " and ", "@": " at ", "+": " plus ", "=": " equals ", "#": " number ", "%": " percent "}
CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence")}
CURRENCIES |= {"€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}
_YEAR_CUES = {"in", "since", "by", "of", "from", "until", "till", "before", "after", "during", "year", "around"}
_EMOTICON = re.compile(r"(?<!\w)[:;=8][-']?[)(DPp/\\|\]\[]+(?!\w)|<3")


def number_words(n: int) -> str:
    """Cardinal English words for an integer: 1250 -> 'one thousand two hundred fifty'."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return _ONES[n // 100] + " hundred" + (" " + number_words(n % 100) if n % 100 else "")
    for size, name in _SCALES:
        if n >= size:
            head, rest = divmod(n, size)
            return number_words(head) + " " + name + (" " + number_words(rest) if rest else "")
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    """Ordinal words: 3 -> 'third', 21 -> 'twenty-first', 40 -> 'fortieth'."""
    words = number_words(n)
    head, sep, last = words.rpartition("-" if "-" in words.split(" ")[-1] else " ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_words(n: int) -> str:
    """Year words: 1999 -> 'nineteen ninety-nine', 2005 -> 'two thousand five', 2024 -> 'twenty twenty-four'."""
    if 2000 <= n <= 2009 or not 1100 <= n <= 2099:
        return number_words(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return number_words(hi) + " hundred"
    return number_words(hi) + (" oh " if lo < 10 else " ") + number_words(lo)


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def _digits(s: str) -> str:
    return " ".join(_ONES[int(c)] for c in s)


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = CURRENCIES[m["cur"]]
    whole, frac, scale = m["whole"], m["frac"], m["scale"]
    if scale:  # "$1.5 million" -> "one point five million dollars"
        scale = {"k": "thousand", "m": "million", "bn": "billion"}.get(scale.lower(), scale.lower())
        amount = number_words(_int(whole)) + (" point " + _digits(frac) if frac else "")
        return f"{amount} {scale} {many}"
    units = _int(whole)
    out = f"{number_words(units)} {one if units == 1 else many}"
    if frac and int(frac.ljust(2, "0")):
        cents = int(frac.ljust(2, "0"))
        out += f" and {number_words(cents)} {sub_one if cents == 1 else sub_many}"
    return out


def _month(name: str) -> str:
    return _MONTH_ABBR[name[:3].lower()]


def _decade(n: int) -> str:
    """1990 -> 'nineteen nineties', 2010 -> 'twenty tens'."""
    words = year_words(n)
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _date(month: str, day: int, year: int | None) -> str:
    return f"{month} {ordinal_words(day)}" + (f", {year_words(year)}" if year else "")


def _time(m: re.Match) -> str:
    h, mins, ampm = int(m["h"]), int(m["m"] or 0), m["ampm"]
    words = number_words(h)
    if mins == 0:
        words += "" if ampm else " o'clock"
    else:
        words += (" oh " if mins < 10 else " ") + number_words(mins)
    return words + (f" {ampm[0].lower()} m" if ampm else "")


def _number(m: re.Match) -> str:
    s = m.group(0)
    digits = s.replace(",", "")
    if len(digits) > 9 or (digits.startswith("0") and len(digits) > 1):  # phone numbers, codes: digit by digit
        return _digits(digits)
    n = int(digits)
    before = m.string[: m.start()].split()
    if "," not in s and 1100 <= n <= 2099 and before and before[-1].lower().strip("(") in _YEAR_CUES:
        return year_words(n)
    return number_words(n)


def drop_symbols(text: str) -> str:
    """Remove emoji, emoticons, pictographs and invisible joiners; keep letters, digits, punctuation, spaces."""
    text = _EMOTICON.sub(" ", text)
    keep = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("So", "Cf", "Co", "Cn", "Cs") or ch in "\ufe0e\ufe0f" or (cat == "Sk" and ord(ch) > 0x1F000):
            keep.append(" ")
        else:
            keep.append(ch)
    return "".join(keep)


def normalize_text(text: str) -> str:
    """Rewrite `text` into plain words a voice reads the same way every time.

    Numbers, money ($, £, €, ¥), percentages, ordinals, dates (ISO, 'March 3rd, 2024', '3 March'), clock
    times, years after a cue word ('in 1999'), decimals, ranges, units after numbers, common abbreviations
    and symbols become words; emoji and emoticons are dropped.
    """
    t = unicodedata.normalize("NFKC", text)
    t = t.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"').replace("–", "-")
    t = re.sub(r"(\d)\s?°\s?([CF]?)(?![a-z])", lambda m: m[1] + _DEGREES[m[2]], t)  # before ° is dropped as a symbol
    t = drop_symbols(t)
    for abbr, full in ABBREVIATIONS.items():
        t = re.sub(r"(?<![\w.])" + re.escape(abbr) + r"(?=\s|$|[,;:!?])", full, t)
    t = re.sub(r"\bSt\.(?=\s+[A-Z])", "Saint", t)
    t = re.sub(r"\bSt\.", "Street", t)
    t = re.sub(r"\bNo\.\s*(?=\d)", "number ", t)
    # Dates before plain numbers: ISO, month-name forms, US numeric m/d/yyyy.
    t = re.sub(
        r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b",
        lambda m: _date(MONTHS[int(m[2]) - 1], int(m[3]), int(m[1])) if 1 <= int(m[2]) <= 12 else m[0],
        t,
    )
    t = re.sub(
        r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b",
        lambda m: _date(MONTHS[int(m[1]) - 1], int(m[2]), int(m[3])) if 1 <= int(m[1]) <= 12 else m[0],
        t,
    )
    month = r"(?P<mon>" + "|".join(MONTHS + [m[:3] for m in MONTHS] + ["Sept"]) + r")\.?"
    t = re.sub(
        month + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(?P<year>\d{4})\b)?",
        lambda m: _date(_month(m["mon"]), int(m["day"]), int(m["year"]) if m["year"] else None),
        t,
    )
    t = re.sub(
        r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + month + r"(?:,?\s+(?P<year>\d{4})\b)?",
        lambda m: (
            f"the {ordinal_words(int(m['day']))} of {_month(m['mon'])}"
            + (f", {year_words(int(m['year']))}" if m["year"] else "")
        ),
        t,
    )
    t = re.sub(r"\b(\d{3}0)s\b", lambda m: _decade(int(m[1])), t)
    t = re.sub(r"\b(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>[aApP])\.?\s?[mM]\b\.?", _time, t)
    t = re.sub(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})(?P<ampm>)\b", _time, t)
    cur = "|".join(re.escape(c) for c in CURRENCIES)
    t = re.sub(
        rf"(?P<cur>{cur})\s?(?P<whole>\d[\d,]*)(?:\.(?P<frac>\d+))?(?:\s?(?P<scale>million|billion|thousand|bn|k|m)\b)?",
        _money,
        t,
        flags=re.IGNORECASE,
    )
    t = re.sub(r"(\d[\d,]*)(?:\.(\d+))?\s?%", lambda m: _num_or_decimal(m[1], m[2]) + " percent", t)
    t = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal_words(int(m[1])), t)
    units = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
    t = re.sub(rf"(\d[\d,]*(?:\.\d+)?)\s?({units})(?![\w])", lambda m: f"{m[1]} {UNITS[m[2]]}", t)
    t = re.sub(r"(?<![\w.])-(?=\d)", "minus ", t)
    t = re.sub(r"\b(\d[\d,]*)\s?-\s?(\d[\d,]*)\b", r"\1 to \2", t)
    t = re.sub(r"\b(\d[\d,]*)\.(\d+)\b", lambda m: _num_or_decimal(m[1], m[2]), t)
    t = re.sub(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\b", _number, t)
    for sym, word in SYMBOLS.items():
        t = t.replace(sym, word)
    t = re.sub(r"[^\w\s.,;:!?'\"()\-—…]", " ", t)
    t = re.sub(r"\s+", " ", t).strip()
    t = re.sub(r"\s+([.,;:!?…])", r"\1", t)
    return re.sub(r"([.,;:!?])\1+", r"\1", t)


def _num_or_decimal(whole: str, frac: str | None) -> str:
    return number_words(_int(whole)) + (" point " + _digits(frac) if frac else "")


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_CLAUSE_END = re.compile(r"(?<=[,;:—])\s+")


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Sentences of `text`, each at most `max_chars`: longer ones are split at clause punctuation, then spaces."""
    out = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = sentence.strip()
        while len(sentence) > max_chars:
            window = sentence[: max_chars + 1]
            cuts = [m.end() for m in _CLAUSE_END.finditer(window)] or [m.end() for m in re.finditer(r"\s+", window)]
            cut = cuts[-1] if cuts else max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


def group_sentences(sentences: list[str], max_chars: int) -> list[str]:
    """Join consecutive sentences into chunks of at most `max_chars` (for engines that take long inputs)."""
    chunks: list[str] = []
    for s in sentences:
        if chunks and len(chunks[-1]) + 1 + len(s) <= max_chars:
            chunks[-1] += " " + s
        else:
            chunks.append(s)
    return chunks


def speakable(text: str) -> bool:
    """True when `text` holds at least one letter or digit to say."""
    return bool(re.search(r"[^\W_]", text))
