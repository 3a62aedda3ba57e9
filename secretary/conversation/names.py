"""Matching a heard name to the domain's directory, and the names speech recognition is told to expect.

Speech recognition misspells names ("Mueller" for "Miller", "Kovalski" for "Kowalski"), so a name is scored by
spelling (rapidfuzz's ratio) and by sound (the Jaro-Winkler similarity of jellyfish's metaphone codes), a good
sound lifting a middling spelling. Titles (Doctor, Doc, Dr, Mr, Mrs, Ms, …) are left out of both sides: the
caller says "Doc Miller" for "Dr. Miller", or just "Miller". A score of `SURE_SCORE` or more is a match; one
between `CONFIRM_SCORE` and that is a guess the front desk asks the caller to confirm; below, nobody matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import jellyfish
from rapidfuzz import fuzz

from secretary.tenants.config import SecretaryConfig, TransferTarget

SURE_SCORE = 90.0
CONFIRM_SCORE = 72.0
SOUND_MIN_LETTERS = 4  # shorter names ("Kim", "Tim") sound alike too easily: spelling only

_WORD = re.compile(r"[a-z0-9']+")
_SPOKEN_FORMS = {"dr": "doctor", "mr": "mister", "mrs": "missus", "st": "saint", "dept": "department"}
TITLES = frozenset({"doctor", "doc", "mister", "missus", "ms", "miss", "mz", "professor", "prof", "sir", "madam"})


def normalise(text: str) -> str:
    """Lower case words, abbreviations spoken out ("Dr." -> "doctor"), punctuation gone."""
    words = _WORD.findall(text.casefold().replace("-", " "))
    return " ".join(_SPOKEN_FORMS.get(w, w) for w in words)


def without_titles(words: Sequence[str]) -> list[str]:
    return [w for w in words if w not in TITLES]


@dataclass(frozen=True, slots=True)
class NameMatch:
    """The best directory entry for what was heard; `tied` when another entry scored the same."""

    target: TransferTarget
    score: float
    tied: bool = False

    @property
    def sure(self) -> bool:
        return self.score >= SURE_SCORE and not self.tied


def _sound(text: str) -> str:
    return jellyfish.metaphone(text.replace(" ", ""))


def name_score(name: str, heard: str) -> float:
    """0–100: how well `heard` (a few words) sounds and reads like `name` (both normalised, untitled)."""
    name, heard = name.replace(" ", ""), heard.replace(" ", "")
    spelling = fuzz.ratio(name, heard)
    if len(name) < SOUND_MIN_LETTERS or spelling >= 100:
        return spelling
    sound = 100 * jellyfish.jaro_winkler_similarity(_sound(name), _sound(heard))
    return max(spelling, (spelling + sound) / 2)


def _best_window(name: str, words: Sequence[str]) -> float:
    """The best score of `name` against any run of words about as long as it (a name heard split or joined:
    "O'Brien" as "O Brien")."""
    size = len(name.split())
    best = 0.0
    for width in {max(1, size - 1), size, size + 1}:
        for start in range(max(1, len(words) - width + 1)):
            window = " ".join(words[start : start + width])
            if window:
                best = max(best, name_score(name, window))
    return best


def match_name(config: SecretaryConfig, heard: str) -> NameMatch | None:
    """The directory entry `heard` (normalised) names best, by name, alias or extension; None below
    `CONFIRM_SCORE`. The business's own name is no request for a person ("Is this Nakamura Motors?" is not
    one for Mr. Nakamura)."""
    company = normalise(config.company)
    if company:
        heard = f" {heard} ".replace(f" {company} ", " ").strip()
    all_words = heard.split()
    words = without_titles(all_words)
    scored: list[tuple[float, TransferTarget]] = []
    for target in config.directory:
        score = 100.0 if target.extension in all_words else 0.0
        for spoken in target.spoken_names:
            full = normalise(spoken).split()
            name = " ".join(without_titles(full) or full)
            if name and words:
                score = max(score, _best_window(name, words if without_titles(full) else all_words))
        if score >= CONFIRM_SCORE:
            scored.append((score, target))
    if not scored:
        return None
    scored.sort(key=lambda s: s[0], reverse=True)
    (best, target), rest = scored[0], scored[1:]
    tied = any(score == best and other.extension != target.extension for score, other in rest)
    return NameMatch(target, best, tied)


def stt_hints(config: SecretaryConfig) -> list[str]:
    """The names (and aliases) of this domain's directory, for speech recognition to expect on its calls."""
    return list(dict.fromkeys(name for target in config.directory for name in target.spoken_names))
