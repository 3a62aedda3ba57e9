"""The rule-based front desk: a brain that needs no model.

It is the offline default and the last fallback of every brain chain, so it must never fail: it recognises
greetings, transfer requests by name or alias (fuzzy, to survive speech-recognition spelling), opening-hours
questions, message requests, goodbyes, and answers the domain's FAQ lines and knowledge-base passages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import jellyfish
from rapidfuzz import fuzz

from secretary.calls.prompts import prompts_for
from secretary.conversation.brain import (
    BrainEvent,
    BrainRequest,
    Decision,
    Finished,
    Intent,
    TextDelta,
)
from secretary.knowledge import grounding
from secretary.tenants.config import SecretaryConfig, TransferTarget

NAME_MATCH_MIN = 82
SOUNDS_ALIKE_SCORE = 90  # same metaphone key: "sails" for "sales", "Mueller" for "Miller"
FAQ_MATCH_MIN = 72

_WORD = re.compile(r"[a-z0-9']+")
_SPOKEN_FORMS = {"dr": "doctor", "mr": "mister", "mrs": "missus", "st": "saint", "dept": "department"}
_GOODBYE = re.compile(
    r"\b(good ?bye|bye|that'?s all|that is all|nothing else|that'?s it|have a (nice|good|great) day|hang up)\b"
)
_MESSAGE = re.compile(r"\b(leave|take|record|give)\b.{0,20}\bmessage\b|\bvoice ?mail\b")
_TRANSFER_VERB = re.compile(
    r"\b(put me through|put me thru|transfer|connect|speak (to|with)|talk (to|with)|reach|get me|"
    r"through to|extension|department|line)\b"
)
_OPERATOR = re.compile(
    r"\b(operator|human|real person|a person|someone|somebody|receptionist|representative|agent|front desk)\b"
)
_HOURS = re.compile(r"\b(open|opening|close|closing|closed|hours|when are you|business hours)\b")
_GREETING = re.compile(r"^(hi|hello|hey|hiya|good (morning|afternoon|evening)|yes hello)\b")
_THANKS = re.compile(r"\b(thank you|thanks|cheers)\b")


def normalise(text: str) -> str:
    words = _WORD.findall(text.casefold().replace("-", " "))
    return " ".join(_SPOKEN_FORMS.get(w, w) for w in words)


@dataclass(frozen=True, slots=True)
class _Match:
    target: TransferTarget
    score: float


def _sound_key(text: str) -> str:
    return " ".join(jellyfish.metaphone(word) for word in text.split())


def _name_score(name: str, window: str) -> float:
    score = fuzz.ratio(name, window)
    if score < SOUNDS_ALIKE_SCORE and len(name) >= 4 and _sound_key(name) == _sound_key(window):
        score = SOUNDS_ALIKE_SCORE
    return score


def find_target(config: SecretaryConfig, heard: str) -> tuple[TransferTarget | None, bool]:
    """Best directory entry named in `heard` (normalised), and whether two entries matched equally well.
    Speech recognition misspells names, so a name matches a window of the same number of words by
    spelling (fuzzy ratio) or by sound (metaphone)."""
    words = heard.split()
    best: list[_Match] = []
    for target in config.directory:
        score = 0.0
        for spoken in target.spoken_names:
            name = normalise(spoken)
            size = len(name.split())
            if not name:
                continue
            for start in range(max(1, len(words) - size + 1)):
                score = max(score, _name_score(name, " ".join(words[start : start + size])))
        if target.extension in words:
            score = 100.0
        if score >= NAME_MATCH_MIN:
            best.append(_Match(target, score))
    if not best:
        return None, False
    best.sort(key=lambda m: m.score, reverse=True)
    tied = len(best) > 1 and best[1].score == best[0].score and best[1].target.extension != best[0].target.extension
    return best[0].target, tied


def directory_summary(config: SecretaryConfig) -> str:
    names = [t.name for t in config.directory]
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


class FrontDesk:
    name = "front_desk"

    async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
        text, decision, understood = self.decide(request)
        yield TextDelta(text)
        if decision is not None:
            yield decision
        yield Finished(self.name, understood)

    def decide(self, request: BrainRequest) -> tuple[str, Decision | None, bool]:
        config = request.config
        heard = normalise(request.caller_text)
        if not heard:
            return "Sorry, I didn't catch that. Could you say it again?", None, False

        target, tied = find_target(config, heard)
        wants_transfer = bool(_TRANSFER_VERB.search(heard))
        if _GOODBYE.search(heard) and not wants_transfer:
            return config.farewell, Decision(Intent.HANGUP), True
        if _MESSAGE.search(heard):
            return (
                "Of course. Please leave your message after the tone, and hang up when you are done.",
                Decision(Intent.TAKE_MESSAGE),
                True,
            )
        if target is not None and tied:
            return f"Did you mean {target.name}? Please say the full name.", None, True
        if target is not None and (wants_transfer or len(heard.split()) <= 4):
            return (
                f"Certainly. I'm putting you through to {target.name} now.",
                Decision(Intent.TRANSFER, target.name),
                True,
            )
        if _OPERATOR.search(heard) and (wants_transfer or len(heard.split()) <= 6):
            return "Of course. Let me put you through to someone who can help.", Decision(Intent.OPERATOR), True
        if wants_transfer and target is None and config.directory:
            return f"Who would you like to speak to? I can connect you with {directory_summary(config)}.", None, True
        if _HOURS.search(heard):
            return self._hours_answer(request), None, True

        answer = self._faq_answer(config, heard) or self._knowledge_answer(request)
        if answer:
            return answer, None, True
        if target is not None:
            return (
                f"Certainly. I'm putting you through to {target.name} now.",
                Decision(Intent.TRANSFER, target.name),
                True,
            )
        if _GREETING.search(heard) and len(heard.split()) <= 5:
            return "Hello! How can I help you today?", None, True
        if _THANKS.search(heard):
            return "You're welcome. Is there anything else I can help you with?", None, True
        if request.misunderstood_before >= 1:
            return (
                "I'm sorry, I can't help with that. Let me put you through to a colleague.",
                Decision(Intent.OPERATOR),
                False,
            )
        if request.knowledge is not None:
            return prompts_for(config.language).no_information, None, False
        return self._offer_help(config), None, False

    @staticmethod
    def _hours_answer(request: BrainRequest) -> str:
        hours = request.config.business_hours
        if hours is None:
            return "I'm sorry, I don't have our opening hours. Would you like me to put you through to someone?"
        now = "We are open right now." if hours.is_open(request.now) else "We are closed at the moment."
        return f"{hours.describe()} {now}"

    @staticmethod
    def _faq_answer(config: SecretaryConfig, heard: str) -> str | None:
        best_score, best_answer = 0.0, None
        for entry in config.faq:
            score = fuzz.token_set_ratio(normalise(entry.question), heard)
            if any(normalise(k) and re.search(rf"\b{re.escape(normalise(k))}\b", heard) for k in entry.keywords):
                score = max(score, 90.0)
            if score > best_score:
                best_score, best_answer = score, entry.answer
        return best_answer if best_score >= FAQ_MATCH_MIN else None

    @staticmethod
    def _knowledge_answer(request: BrainRequest) -> str | None:
        """Only a passage that answers the question is read (`knowledge.grounding`): a close one may not."""
        found = grounding.answer(request.caller_text, request.knowledge or (), request.config.language)
        return found.say if found else None

    @staticmethod
    def _offer_help(config: SecretaryConfig) -> str:
        offers = []
        if config.business_hours is not None:
            offers.append("tell you our opening hours")
        offers.append("take a message")
        if config.directory:
            offers.append(f"put you through to {directory_summary(config)}")
        listed = ", ".join(offers[:-1]) + (" or " if len(offers) > 1 else "") + offers[-1]
        return f"I'm sorry, I didn't understand. I can {listed}. What would you like?"
