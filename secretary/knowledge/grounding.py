"""Whether a retrieved passage answers the caller's question, and which of its sentences to say.

Similarity alone can't tell. In a document all about one subject every question on that subject is close to
some passage: on the invented businesses of bench/knowledge_threshold.py, questions their documents don't
answer scored up to 0.75 and answered ones from 0.23, so no cut-off separates them, and a price for another
product ("neutering a cat costs 90 pounds" for a dog) is the nearest sentence. A passage answers only when:

1. its score is above its collection's floor (`floor_from`): what off-topic questions (`PROBES`) reach in
   that collection, so a collection whose every passage is close to everything needs a higher score;
2. every key term of the question (a content word, stemmed; a number) is in the passage or its heading;
3. a question that asks for a value (a price, a count, a duration or distance, a time or day) gets a
   sentence that holds such a value and names every key term itself (or in a heading that is about nothing
   else): the value must belong to the thing asked about. That sentence is what is said; for other
   questions, the sentences that name the key terms the heading doesn't;
4. no other passage that answers differently is nearly as close (`MARGIN`).

Otherwise nothing is said from the documents. Stop words and value patterns are English (MiniLM is an English
model); the stemmer follows the domain's language.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache, lru_cache
from typing import Any

import snowballstemmer
from rapidfuzz import fuzz, process

from secretary.conversation.brain import KnowledgeChunk
from secretary.knowledge.chunking import reading_sentences

# Questions no business document answers, asked of each collection to see how close "unrelated" is there.
PROBES = (
    "What's the weather going to be like tomorrow?",
    "Who won the football game last night?",
    "Can you tell me a joke?",
    "What is the capital of France?",
    "My internet is not working.",
    "Is there a train to Boston today?",
    "How old is the president?",
    "Can you recommend a good pizza place?",
    "What's the latest news about the election?",
    "How do I reset my phone's password?",
)
PROBE_MARGIN = 0.10  # a passage must beat the probes' median score by this much
FLOOR_MIN, FLOOR_MAX = 0.20, 0.40  # bounds for the floor, whatever the probes say
MAX_SPOKEN_SENTENCES = 2
REJOIN_MIN_CHARS, REJOIN_MIN_SCORE = 8, 90  # two heard words taken for one of the passage's (`_rejoined`)
MARGIN = 0.05  # a passage that answers must be this much closer than one that answers otherwise


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP = _wordset(
    """a an the of to for in on at by with from about into onto over under after before during up down out off
    than then so and or but if not no nor yes please i me my mine myself you your yours we our ours us he him his
    she her hers it its they them their this that these those there here what when where which who whom whose why
    how much many long old far is are am was were be been being do does did done doing can could would should will
    shall may might must have has had having get gets got getting give go goes going come make makes made making
    take takes took taking put let lets need needs want wants wanted like know tell say ask find help happen
    happens any some anything something everything all also just really very ok okay hello hi thanks thank sorry
    still one ones way thing things kind kinds type types sort usual usually normal normally
    typical typically per possible able next ever as"""
)
# Words that only say what kind of value is asked for; the value itself is checked instead.
_VALUE_WORDS = _wordset(
    """cost costs costing price prices priced pricing charge charges charged fee fees rate rates expensive cheap
    time times day days date"""
)
_SMALL_NUMBERS = (
    "zero _ two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"
    " eighteen nineteen twenty"  # "one" is as often a pronoun ("the big one") as a number
)
_NUMBER_WORDS = {
    word: str(value) for value, word in enumerate(_SMALL_NUMBERS.split()) if word != "_"
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
     "ninety": "90", "hundred": "100", "thousand": "1000", "dozen": "12"}  # fmt: skip
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CONTRACTION = re.compile(r"(n't|'s|'re|'ll|'ve|'d|'m)$")


class Wanted(Enum):
    """The kind of value a question asks for."""

    PRICE = "price"
    COUNT = "count"
    MEASURE = "measure"  # how long, how old, how far
    WHEN = "when"


_ASKS = (
    (Wanted.MEASURE, re.compile(r"\bhow (long|old|far|soon)\b|\bhow much time\b")),
    (Wanted.PRICE, re.compile(r"\bhow (much|expensive)\b|\b(costs?|prices?|priced|charges?|fees?|rates?)\b")),
    (Wanted.COUNT, re.compile(r"\bhow many\b")),
    (Wanted.WHEN, re.compile(r"\bwhen\b|\bwhat time\b|\b(which|what) (day|days|date|month|year)\b")),
)  # fmt: skip
_UNIT = (
    r"(seconds?|minutes?|mins?|hours?|hrs?|days?|nights?|weeks?|months?|years?|km|kilomet(re|er)s?|miles?|"
    r"met(re|er)s?|m|ft|feet|yards?|blocks?)"
)
_NUMBER = r"\d+(?:[.,:]\d+)?"
_HOLDS = {
    Wanted.PRICE: re.compile(
        rf"[£€$]\s?{_NUMBER}|{_NUMBER}\s?([£€$]|pounds?|euros?|dollars?|cents?|pence|p\b|usd|eur|gbp|chf|francs?)"
        r"|\bfree\b|\bno (extra )?charge\b"
    ),
    Wanted.COUNT: re.compile(_NUMBER),  # refined by the counted word (`_counted`)
    Wanted.MEASURE: re.compile(rf"{_NUMBER}(\s+(to|or|and|-)\s+{_NUMBER})?[\s-]*(\w+\s+)?{_UNIT}\b|\bof age\b"),
    Wanted.WHEN: re.compile(
        rf"{_NUMBER}\s?(am|pm|a\.m\.|p\.m\.|o'clock)|\b\d{{1,2}}[:.]\d\d\b"
        r"|\b(noon|midday|midnight|today|tomorrow|tonight|weekends?|mornings?|afternoons?|evenings?|nights?"
        r"|(mon|tues|wednes|thurs|fri|satur|sun)days?|january|february|march|april|may|june|july|august|september"
        r"|october|november|december|spring|summer|autumn|fall|winter)\b"
        rf"|{_NUMBER}[\s-]*(\w+\s+)?{_UNIT}\b"
    ),
}


@dataclass(frozen=True, slots=True)
class Grounded:
    """A passage that answers the question, and the sentences of it to say."""

    chunk: KnowledgeChunk
    say: str


@cache
def _stemmer(language: str) -> Any:
    code = language.split("-", 1)[0].lower()
    names = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "nl": "dutch"}
    return snowballstemmer.stemmer(names.get(code, "english"))


def _numbers_as_digits(text: str) -> str:
    return re.sub(r"[a-z]+", lambda m: _NUMBER_WORDS.get(m.group(0), m.group(0)), text.casefold())


def _words(text: str) -> list[str]:
    words = []
    for token in _TOKEN.findall(_numbers_as_digits(text).replace("’", "'")):
        words.append({"can't": "can", "won't": "will"}.get(token) or _CONTRACTION.sub("", token))
    return words


@lru_cache(maxsize=8192)
def _stem(word: str, language: str) -> str:
    """The snowball stem; in English also without "-ment" (pay for payment, treat for treatment)."""
    if word.isdigit():
        return word
    stem: str = _stemmer(language).stemWord(word)
    if language.startswith("en") and stem.endswith("ment") and len(stem) >= 7:
        stem = stem[:-4]
    return stem


def key_terms(text: str, language: str = "en", heard_as: Iterable[str] = ()) -> set[str]:
    """The question's content words, stemmed, and its numbers: what a passage must name to answer it.
    `heard_as`: the passage's words, for a word speech recognition split in two (`_rejoined`)."""
    words = _rejoined(_words(text), set(heard_as))
    return {
        _stem(w, language) for w in words if w not in _STOP and w not in _VALUE_WORDS and (len(w) > 1 or w.isdigit())
    }


def _rejoined(words: list[str], known: set[str]) -> list[str]:
    """Speech recognition splits a word it doesn't know ("however craft" for hovercraft): two neighbours
    that are not in the passage but together spell one of its words nearly exactly stand for that word."""
    if not known:
        return words
    out: list[str] = []
    i = 0
    while i < len(words):
        pair = "".join(words[i : i + 2])
        if i + 1 < len(words) and not {words[i], words[i + 1]} & known and len(pair) >= REJOIN_MIN_CHARS:
            match = process.extractOne(pair, known, scorer=fuzz.ratio, score_cutoff=REJOIN_MIN_SCORE)
            if match is not None:
                out.append(match[0])
                i += 2
                continue
        out.append(words[i])
        i += 1
    return out


def _terms_of(text: str, language: str) -> set[str]:
    return {_stem(w, language) for w in _words(text)}


def wanted(question: str) -> Wanted | None:
    """The kind of value the question asks for; None for a yes/no or open question."""
    text = question.casefold()
    return next((kind for kind, pattern in _ASKS if pattern.search(text)), None)


def _counted(question: str, language: str) -> str | None:
    """The stem of what "how many" counts ("how many people" → "peopl")."""
    match = re.search(r"\bhow many ([a-z]+)", question.casefold())
    return _stem(match.group(1), language) if match else None


def _holds(sentence: str, kind: Wanted, counted: str | None, language: str) -> bool:
    text = _numbers_as_digits(sentence)
    if kind is Wanted.COUNT and counted is not None:
        words = [_stem(w, language) for w in _words(sentence)]
        return any(w.isdigit() and counted in words[i + 1 : i + 4] for i, w in enumerate(words))
    return bool(_HOLDS[kind].search(text))


def _names(words: set[str], terms: set[str]) -> bool:
    """Whether `words` name every term. Stems of one word can differ ("deliv" for deliver, "deliveri" for
    delivery), so a stem of five letters or more also matches one that extends it by a few letters."""
    return all(term in words or any(_same_word(term, word) for word in words) for term in terms)


def _same_word(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    return len(short) >= 5 and len(long) - len(short) <= 4 and long.startswith(short) and not short.isdigit()


def _heading(chunk: KnowledgeChunk) -> str:
    """The heading part of a source (`guide.md: Shipping`, `prices.pdf, page 3: Fees`), not the file name."""
    return chunk.source.split(": ", 1)[1] if ": " in chunk.source else ""


def _answer_of(question: str, chunk: KnowledgeChunk, language: str) -> str | None:
    terms = key_terms(question, language, heard_as=_words(f"{_heading(chunk)} {chunk.text}"))
    if not terms:
        return None
    heading = _terms_of(_heading(chunk), language)
    sentences = reading_sentences(chunk.text)
    named = [_terms_of(s, language) for s in sentences]
    if not _names(heading.union(*named), terms):
        return None
    kind = wanted(question)
    if kind is not None:
        # A heading about the thing asked ("MOT tests") stands for it; one that also names other things
        # ("Courtesy cars and collection") can't say whose the value is.
        topic = key_terms(_heading(chunk), language)
        own = terms - topic if topic and topic <= terms else terms
        counted = _counted(question, language)
        for sentence, words in zip(sentences, named, strict=True):
            if _names(words, own) and _holds(sentence, kind, counted, language):
                return sentence
        return None
    needed = {t for t in terms if not _names(heading, {t})}
    picked = chunk.answer or ""
    if picked and _names(_terms_of(picked, language), needed):
        return picked
    whole = [s for s, words in zip(sentences, named, strict=True) if _names(words, needed)]
    if whole:
        return whole[0]
    naming = [(s, words) for s, words in zip(sentences, named, strict=True) if any(_names(words, {t}) for t in needed)]
    if len(naming) <= MAX_SPOKEN_SENTENCES and _names(set().union(*(w for _, w in naming)), needed):
        return " ".join(s for s, _ in naming)
    return None


def answer(question: str, chunks: Sequence[KnowledgeChunk], language: str = "en") -> Grounded | None:
    """The closest passage that answers `question`, with what to say from it; None when none does."""
    found = _grounded(question, chunks, language)
    if not found:
        return None
    best = found[0]
    # Two passages that answer differently, nearly as close: the question could be about either. (The same
    # sentence twice is no doubt: passages overlap, and a document may say a thing twice.)
    rival = next((g for g in found[1:] if g.say != best.say), None)
    if rival is not None and best.chunk.score - rival.chunk.score < MARGIN:
        return None
    return best


def _grounded(question: str, chunks: Sequence[KnowledgeChunk], language: str) -> list[Grounded]:
    found = []
    for chunk in sorted(chunks, key=lambda c: c.score, reverse=True):
        say = _answer_of(question, chunk, language) if chunk.score >= chunk.floor else None
        if say:
            found.append(Grounded(chunk, say))
    return found


def supported(question: str, chunks: Sequence[KnowledgeChunk], language: str = "en") -> list[KnowledgeChunk]:
    """The passages that answer `question` (for a brain that writes its own reply from them), best first."""
    return [g.chunk for g in _grounded(question, chunks, language)]


def floor_from(probe_scores: Sequence[float]) -> float:
    """A collection's floor from the best scores that `PROBES` reach in it."""
    if not probe_scores:
        return FLOOR_MIN
    return round(min(FLOOR_MAX, max(FLOOR_MIN, statistics.median(probe_scores) + PROBE_MARGIN)), 4)
