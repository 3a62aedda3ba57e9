"""The rule-based front desk: a brain that needs no model.

It is the offline default and the last fallback of every brain chain, so it must never fail: it recognises
greetings, transfer requests by name or alias (`names`: spelling and sound, titles aside), opening-hours
questions, message requests, goodbyes, and answers the domain's FAQ lines and knowledge-base passages.

It remembers what it just asked (`DeskState`, kept in the call's state) and reads the caller's next words as
the answer: a bare name after "Who would you like to speak to?", yes, no or a correction after "Is that
right?", a name or a number while it takes a message's details. A name it is unsure of is confirmed before a
transfer; a name it does not know gets "there's no one by that name here" and an offer (a message or
reception), never the whole directory; two misunderstandings in a row get the same offer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

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
from secretary.conversation.desk_state import Awaiting, DeskState, MessageDetails
from secretary.conversation.meaning import Meant, Understood
from secretary.conversation.names import TITLES, NameMatch, match_name, normalise
from secretary.knowledge import grounding
from secretary.tenants.config import WEEKDAY_NAMES, BusinessHours, SecretaryConfig, TransferTarget, spoken_time

FAQ_MATCH_MIN = 72
SHORT_REQUEST_WORDS = 4  # a name alone ("billing please") is a request to be put through
MIN_CALLBACK_DIGITS = 3

_GOODBYE = re.compile(
    r"\b(good ?bye|bye|that'?s all|that is all|nothing else|that'?s it|have a (nice|good|great) day|hang up)\b"
)
_MESSAGE = re.compile(r"\b(leave|take|record|give)\b.{0,20}\bmessage\b|\bvoice ?mail\b")
_TRANSFER_VERB = re.compile(
    r"\b(put me through|put me thru|transfer|connect|speak (to|with)|talk (to|with)|reach|get me|"
    r"through to|extension|department|line)\b"
)
_OPERATOR = re.compile(
    r"\b(operator|human|real person|a person|someone|somebody|receptionist|reception|representative|agent|"
    r"front desk)\b"
)
_NOW = re.compile(r"\b(open (right )?now|still open|open at the moment|currently open|open yet)\b")
_HOURS = re.compile(r"\b(open|opening|close|closing|closed|hours|when are you|business hours)\b")
_GREETING = re.compile(r"^(hi|hello|hey|hiya|good (morning|afternoon|evening)|yes hello)\b")
_THANKS = re.compile(r"\b(thank you|thanks|cheers)\b")
_QUESTION = re.compile(r"^(what|which|how|when|where|who|why|whose|do you|does|is there|are there|is it|are you)\b")
_URGENT = re.compile(r"\b(urgent|urgently|emergency|emergencies|as soon as possible|asap|right away|immediately)\b")
_URGENT_LINE = re.compile(r"\b(urgent|emergency|emergencies|out of hours|on call|after hours)\b")
_YES = re.compile(
    r"\b(yes|yeah|yep|yup|yes please|correct|right|exactly|sure|okay|ok|absolutely|perfect|great|fine|"
    r"please do|go ahead|sounds good|that's it)\b"
)
_NO = re.compile(r"\b(no|nope|nah|not|wrong|incorrect|wait)\b")
_CORRECTION = re.compile(r"\b(no|not|wrong|actually|instead|meant|rather|for)\b")
_NEVER_MIND = re.compile(r"\b(never ?mind|forget it|cancel|no one|nobody)\b")
_ANYONE = re.compile(r"\b(anyone|anybody|whoever|doesn't matter|does not matter|in general|general|everyone)\b")
# Words around a name in a transfer request: what is left once they are gone is a name the caller asked for.
_NOT_A_NAME = TITLES | {
    "me", "to", "with", "you", "the", "a", "an", "please", "put", "through", "thru", "connect", "speak", "talk",
    "transfer", "can", "could", "i", "i'd", "like", "would", "want", "need", "is", "there", "get", "reach",
    "now", "him", "her", "them", "today", "possible", "if", "my", "our", "your", "be", "call", "line", "hello",
    "hi", "just", "again", "quickly", "thanks", "thank", "someone", "somebody", "extension", "department",
}  # fmt: skip
_END_OF_NAME = re.compile(r"\b(about|regarding|concerning|because|for|since|so|and)\b")
_NAME_INTRO = re.compile(r"^(my name is|my name's|the name is|name is|this is|it's|it is|i'm|i am|call me)\s+")
_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_SAME_NUMBER = re.compile(r"\b(same|this|that) (number|one)\b|\bcaller id\b")


@dataclass(frozen=True, slots=True)
class DeskReply:
    text: str
    decision: Decision | None = None
    understood: bool = True
    desk: DeskState | None = None  # the state for the next turn (None: back to nothing asked)


# A request for a person, by words or by meaning: one reply, one decision.
_TO_A_PERSON = DeskReply("Of course. Let me put you through to someone who can help.", Decision(Intent.OPERATOR))


def directory_summary(config: SecretaryConfig) -> str:
    names = [t.name for t in config.directory]
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _asked_for_someone(heard: str) -> bool:
    """A transfer request that names someone ("speak to John Smith"), as against one that doesn't
    ("can you transfer me?")."""
    verb = _TRANSFER_VERB.search(heard)
    if verb is None:
        return False
    after = _END_OF_NAME.split(heard[verb.end() :], maxsplit=1)[0]
    return any(word not in _NOT_A_NAME and not word.isdigit() for word in after.split())


def spoken_digits(heard: str) -> str:
    """The digits said in `heard` (normalised): "555 0199", "five five five oh one", "double two"."""
    digits, repeat = [], 1
    for word in heard.split():
        if word in ("double", "triple"):
            repeat = 2 if word == "double" else 3
            continue
        if word.isdigit():
            digits.append(word * repeat if len(word) == 1 else word)
        elif word in _DIGIT_WORDS:
            digits.append(_DIGIT_WORDS[word] * repeat)
        repeat = 1
    return "".join(digits)


def say_number(digits: str) -> str:
    """Digits as they are read back, one by one in groups: "5 5 5, 0 1 9 9"."""
    groups = []
    while len(digits) > 4:
        groups.append(digits[:3])
        digits = digits[3:]
    groups.append(digits)
    return ", ".join(" ".join(group) for group in groups if group)


def caller_name_in(text: str) -> str:
    """The name in an answer to "May I have your name?" ("It's Robin Banks." -> "Robin Banks")."""
    words = normalise(text)
    words = _NAME_INTRO.sub("", words)
    words = re.sub(
        r"\b(please|thanks|thank you|yes|yeah|sure|okay|ok|hi|hello|um+|uh+|er+m?|hm+|ah+|oh|well)\b", " ", words
    )
    name = " ".join(w for w in words.split() if not w.isdigit())[:60].strip()
    return name.title()


def _reads_back(desk: DeskState) -> bool:
    """The reply that asks this reads a message's details back: the caller's name and number."""
    return desk.awaiting is Awaiting.CONFIRM_MESSAGE


def _weekday(day: date) -> str:
    return WEEKDAY_NAMES[day.weekday()]


def _day_asked(heard: str, today: date) -> tuple[date, str] | None:
    """The date an hours question is about, and how the answer names it: "today", "tomorrow", or a weekday
    (the next one from today: "On Friday"); None when it names no day."""
    if re.search(r"\btoday\b", heard):
        return today, "Today"
    if re.search(r"\btomorrow\b", heard):
        return today + timedelta(days=1), "Tomorrow"
    for index, name in enumerate(WEEKDAY_NAMES):
        if re.search(rf"\b{name.lower()}s?\b", heard):
            return today + timedelta(days=(index - today.weekday()) % 7), f"On {name}"
    return None


def _next_opening(hours: BusinessHours, now: datetime) -> str:
    opening = hours.next_opening(now)
    if opening is None:
        return ""
    local = now.astimezone(ZoneInfo(hours.timezone)).date()
    if opening.date() == local:
        day = "today"
    elif opening.date() == local + timedelta(days=1):
        day = "tomorrow"
    else:
        day = f"on {_weekday(opening.date())}"
    return f" We open again {day} at {spoken_time(opening.time())}."


def _described(match: NameMatch) -> str:
    target = match.target
    return f"{target.name}, {target.description}" if target.description else target.name


def _correcting(heard: str) -> bool:
    """Words that can correct a detail just read back: short ("Dr. Brennan"), or saying so ("no, for …"). A
    longer sentence that merely contains a name ("call me about the invoices") corrects nothing."""
    return len(heard.split()) <= SHORT_REQUEST_WORDS or bool(_CORRECTION.search(heard))


def _is_yes(heard: str) -> bool:
    return bool(_YES.search(heard)) and not _NO.search(heard)


def _serving(config: SecretaryConfig, heard: str) -> TransferTarget | None:
    """The one directory entry whose description names what the caller needs, word for word after stemming
    ("I've got a burst pipe" → "Leaks, burst pipes and blocked drains"); None when no entry, or several, do,
    or the caller asks a question (that is for the FAQ and the documents)."""
    if _QUESTION.match(heard):
        return None
    wanted = grounding.key_terms(heard, config.language) - grounding.key_terms(config.company, config.language)
    if not wanted:
        return None
    scored = sorted(
        ((len(wanted & grounding.key_terms(t.description, config.language)), t) for t in config.directory),
        key=lambda pair: pair[0],
        reverse=True,
    )
    if not scored or scored[0][0] == 0 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
        return None
    return scored[0][1]


class FrontDesk:
    name = "front_desk"

    async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
        reply = self.reply(request)
        yield TextDelta(reply.text)
        if reply.decision is not None:
            yield reply.decision
        desk = reply.desk or DeskState()
        yield Finished(self.name, reply.understood, desk=desk, personal=_reads_back(desk))

    def decide(self, request: BrainRequest) -> tuple[str, Decision | None, bool]:
        reply = self.reply(request)
        return reply.text, reply.decision, reply.understood

    def reply(self, request: BrainRequest) -> DeskReply:
        heard = normalise(request.caller_text)
        if not heard:
            return self._failed(request, "Sorry, I didn't catch that. Could you say it again?")
        awaiting = request.desk.awaiting
        if awaiting is Awaiting.CONFIRM_NAME:
            answer = self._confirming_name(request, heard)
        elif awaiting is Awaiting.NAME:
            answer = self._asked_for_name(request, heard)
        elif awaiting is Awaiting.OFFER:
            answer = self._offered(request, heard)
        elif awaiting in (Awaiting.MESSAGE_FOR, Awaiting.CALLER_NAME, Awaiting.CALLBACK, Awaiting.CONFIRM_MESSAGE):
            answer = self._message_answer(request, heard)
        else:
            answer = None
        return answer or self._fresh(request, heard)

    # -- a turn with nothing asked before ---------------------------------------------------------------

    def _fresh(self, request: BrainRequest, heard: str) -> DeskReply:
        config = request.config
        match = match_name(config, heard)
        wants_transfer = bool(_TRANSFER_VERB.search(heard))
        short = len(heard.split()) <= SHORT_REQUEST_WORDS
        if _GOODBYE.search(heard) and not wants_transfer:
            return DeskReply(config.farewell, Decision(Intent.HANGUP))
        if _MESSAGE.search(heard):
            return self._start_message(request, match)
        if match is not None and match.tied:
            return DeskReply(
                f"Did you mean {match.target.name}? Please say the full name.", desk=DeskState(awaiting=Awaiting.NAME)
            )
        requested = match is not None and (wants_transfer or short)
        if requested and match is not None and match.sure:
            return self._put_through(match.target.name)
        if _URGENT.search(heard):
            return self._urgent(config)
        if _HOURS.search(heard) and not wants_transfer:  # "is reception open now?" asks the hours
            return DeskReply(self._hours_answer(request, heard))
        if _OPERATOR.search(heard) and (wants_transfer or len(heard.split()) <= 6):
            # before an uncertain name: "a real person" asks for a person, not for the entry it sounds a bit like
            return _TO_A_PERSON
        if requested and match is not None:
            return self._put_through_or_confirm(match)
        if wants_transfer and config.directory:
            if _asked_for_someone(heard):
                return self._nobody_by_that_name()
            return DeskReply(
                f"Who would you like to speak to? I can connect you with {directory_summary(config)}.",
                desk=DeskState(awaiting=Awaiting.NAME),
            )
        if _HOURS.search(heard):
            return DeskReply(self._hours_answer(request, heard))

        understood = request.understood or Understood()
        faq = config.faq[understood.faq].answer if understood.faq is not None else None
        answer = self._faq_answer(config, heard) or faq or self._knowledge_answer(request)
        if answer:
            return DeskReply(answer)
        if match is not None and match.sure:
            return self._put_through(match.target.name)
        if (serving := _serving(config, heard)) is not None:  # "I've got a dent in my door" -> Bodywork
            return self._put_through(serving.name)
        if (meant := self._meant(request, understood.intent, match)) is not None:
            return meant
        if _GREETING.search(heard) and len(heard.split()) <= 5:
            return DeskReply("Hello! How can I help you today?")
        if _THANKS.search(heard):
            return DeskReply("You're welcome. Is there anything else I can help you with?")
        if request.knowledge is not None:
            return self._failed(request, prompts_for(config.language).no_information)
        return self._failed(request, self._offer_help(config))

    def _failed(self, request: BrainRequest, text: str) -> DeskReply:
        """Not understood. The second time in a row the caller is offered a message or reception; a third
        goes to reception."""
        if request.misunderstood_before >= 2:
            return DeskReply(
                "I'm sorry, I can't help with that. Let me put you through to a colleague.",
                Decision(Intent.OPERATOR),
                understood=False,
            )
        if request.misunderstood_before >= 1:
            return DeskReply(
                "I'm sorry, I'm not getting this. Would you like to leave a message, or shall I put you through to "
                "reception?",
                understood=False,
                desk=DeskState(awaiting=Awaiting.OFFER),
            )
        return DeskReply(text, understood=False, desk=request.desk)

    # -- names -------------------------------------------------------------------------------------------

    @staticmethod
    def _put_through(name: str) -> DeskReply:
        return DeskReply(f"Certainly. I'm putting you through to {name} now.", Decision(Intent.TRANSFER, name))

    def _put_through_or_confirm(self, match: NameMatch) -> DeskReply:
        if not match.sure:
            return DeskReply(
                f"Just to check: {_described(match)}. Is that right?",
                desk=DeskState(awaiting=Awaiting.CONFIRM_NAME, candidate=match.target.name),
            )
        return self._put_through(match.target.name)

    def _meant(self, request: BrainRequest, intent: Meant | None, match: NameMatch | None) -> DeskReply | None:
        """What the caller meant by words the rules don't know (`conversation.meaning`)."""
        config = request.config
        if intent is Meant.HOURS:
            return DeskReply(self._hours_answer(request, normalise(request.caller_text)))
        if intent is Meant.MESSAGE:
            return self._start_message(request, match)
        if intent is Meant.GOODBYE:
            return DeskReply(config.farewell, Decision(Intent.HANGUP))
        if intent is Meant.HUMAN:
            return _TO_A_PERSON
        if intent is Meant.URGENT:
            return self._urgent(config)
        return None  # an address with no FAQ line for it: not understood, as before

    @staticmethod
    def _urgent(config: SecretaryConfig) -> DeskReply:
        """An urgent caller goes straight to the directory's urgent line (an entry whose name, aliases or
        description say urgent, emergency, on call…), else to a person at once — never to a document."""
        for target in config.directory:
            if _URGENT_LINE.search(normalise(" ".join([target.name, *target.aliases, target.description]))):
                return DeskReply(
                    f"I understand, that's urgent. I'm putting you through to {target.name} now.",
                    Decision(Intent.TRANSFER, target.name),
                )
        return DeskReply(
            "I understand, that's urgent. I'm putting you through to a colleague now.", Decision(Intent.OPERATOR)
        )

    @staticmethod
    def _nobody_by_that_name() -> DeskReply:
        return DeskReply(
            "I'm sorry, there's no one by that name here. Would you like to leave a message, or shall I put you "
            "through to reception?",
            desk=DeskState(awaiting=Awaiting.OFFER),
        )

    def _confirming_name(self, request: BrainRequest, heard: str) -> DeskReply | None:
        """After "Just to check: … Is that right?": yes, no, or another name (a correction)."""
        desk = request.desk
        candidate = request.config.target_by_name(desk.candidate or "")
        if candidate is None:
            return None
        match = match_name(request.config, heard)
        named_other = match is not None and match.target.extension != candidate.extension and _correcting(heard)
        if named_other:  # another name wins over a "yes" beside it ("yes, Doctor Brennan")
            if desk.for_message:
                return self._recipient_answer(request, heard, desk.message or MessageDetails())
            return self._answer_name(request, heard)
        if _is_yes(heard) or (match is not None and match.sure and not _NO.search(heard)):
            if desk.for_message:
                details = (desk.message or MessageDetails()).model_copy(update={"recipient": candidate.name})
                return self._next_message_step(request, details)
            return self._put_through(candidate.name)
        if _NO.search(heard):
            if desk.for_message:
                return self._ask(
                    "Sorry about that. Who is the message for?", Awaiting.MESSAGE_FOR, desk.message or MessageDetails()
                )
            return DeskReply(
                "Sorry about that. Who would you like to speak to?", desk=DeskState(awaiting=Awaiting.NAME)
            )
        return None  # the caller moved on: a new request

    def _asked_for_name(self, request: BrainRequest, heard: str) -> DeskReply | None:
        """After "Who would you like to speak to?": the caller's words are a name, whatever their length."""
        if _NEVER_MIND.search(heard):
            return DeskReply("All right. How else can I help you?")
        if match_name(request.config, heard) is not None:
            return self._answer_name(request, heard)
        if _MESSAGE.search(heard) or _GOODBYE.search(heard) or _OPERATOR.search(heard) or _HOURS.search(heard):
            return None
        return self._nobody_by_that_name()

    def _answer_name(self, request: BrainRequest, heard: str) -> DeskReply:
        match = match_name(request.config, heard)
        if match is None:
            return self._nobody_by_that_name()
        if match.tied:
            return DeskReply(
                f"Did you mean {match.target.name}? Please say the full name.", desk=DeskState(awaiting=Awaiting.NAME)
            )
        return self._put_through_or_confirm(match)

    def _offered(self, request: BrainRequest, heard: str) -> DeskReply | None:
        """After "Would you like to leave a message, or shall I put you through to reception?"."""
        if _MESSAGE.search(heard) or re.search(r"\bmessage\b", heard):
            return self._start_message(request, None)
        match = match_name(request.config, heard)
        if match is not None and match.sure:
            return self._put_through(match.target.name)
        if _OPERATOR.search(heard) or _TRANSFER_VERB.search(heard) or _is_yes(heard):
            return DeskReply("Of course. Let me put you through to reception.", Decision(Intent.OPERATOR))
        if _NO.search(heard) or _NEVER_MIND.search(heard):
            return DeskReply("All right. How else can I help you?")
        return None

    # -- messages ----------------------------------------------------------------------------------------

    def _start_message(self, request: BrainRequest, match: NameMatch | None) -> DeskReply:
        """A message: for whom, from whom, and a number to call back on, read back before it is recorded."""
        details = MessageDetails()
        if match is not None and not match.tied:
            if not match.sure:
                return self._confirm_recipient(match, details)
            details.recipient = match.target.name
        return self._next_message_step(request, details)

    @staticmethod
    def _confirm_recipient(match: NameMatch, details: MessageDetails) -> DeskReply:
        state = DeskState(
            awaiting=Awaiting.CONFIRM_NAME, candidate=match.target.name, for_message=True, message=details
        )
        return DeskReply(f"Is the message for {_described(match)}?", desk=state)

    @staticmethod
    def _ask(text: str, awaiting: Awaiting, details: MessageDetails) -> DeskReply:
        return DeskReply(text, desk=DeskState(awaiting=awaiting, message=details))

    def _next_message_step(self, request: BrainRequest, details: MessageDetails) -> DeskReply:
        """Asks the first detail still missing; with all of them, reads them back."""
        if details.recipient is None:
            if request.config.directory:
                return self._ask("Of course. Who is the message for?", Awaiting.MESSAGE_FOR, details)
            details.recipient = ""
        if details.caller_name is None:
            known = request.caller_id_name.strip()
            if not known or any(c.isdigit() for c in known):  # no name, or a number in the name's place
                return self._ask("May I have your name, please?", Awaiting.CALLER_NAME, details)
            details.caller_name = known
        if details.callback_number is None:
            offered = re.sub(r"\D", "", request.caller_id_number)
            if len(offered) < MIN_CALLBACK_DIGITS:
                return self._ask("What number can we call you back on?", Awaiting.CALLBACK, details)
            details.callback_number = offered
        return self._ask(self._read_back(request.config, details), Awaiting.CONFIRM_MESSAGE, details)

    @staticmethod
    def _read_back(config: SecretaryConfig, details: MessageDetails) -> str:
        recipient = details.recipient or config.company or "the team"
        sender = f" from {details.caller_name}" if details.caller_name else ""
        callback = (
            f"we can call you back on {say_number(details.callback_number)}"
            if details.callback_number
            else "there's no number to call you back on"
        )
        return f"So that's a message for {recipient}{sender}, and {callback}. Is that right?"

    def _message_answer(self, request: BrainRequest, heard: str) -> DeskReply | None:
        desk = request.desk
        details = (desk.message or MessageDetails()).model_copy()
        if _GOODBYE.search(heard) and not _YES.search(heard):
            return DeskReply(request.config.farewell, Decision(Intent.HANGUP))
        if _NEVER_MIND.search(heard) and desk.awaiting is not Awaiting.MESSAGE_FOR:
            return DeskReply("All right, no message. How else can I help you?")
        if desk.awaiting is Awaiting.MESSAGE_FOR:
            if _ANYONE.search(heard) or _NEVER_MIND.search(heard):
                details.recipient = ""
                return self._next_message_step(request, details)
            return self._recipient_answer(request, heard, details)
        # a detail not understood is asked once more; then the message goes on without it
        if desk.awaiting is Awaiting.CALLER_NAME:
            details.caller_name = caller_name_in(request.caller_text)
            if not details.caller_name and not request.misunderstood_before:
                return self._failed(request, "Sorry, I didn't catch your name. Could you say it again?")
            return self._next_message_step(request, details)
        if desk.awaiting is Awaiting.CALLBACK:
            digits = spoken_digits(heard)
            if _SAME_NUMBER.search(heard) and request.caller_id_number:
                digits = re.sub(r"\D", "", request.caller_id_number)
            if len(digits) < MIN_CALLBACK_DIGITS and not request.misunderstood_before:
                return self._failed(request, "Sorry, I didn't get the number. Could you say it digit by digit?")
            details.callback_number = digits if len(digits) >= MIN_CALLBACK_DIGITS else ""
            return self._next_message_step(request, details)
        return self._confirming_message(request, heard, details)

    def keyed_number(self, request: BrainRequest, digits: str) -> DeskReply | None:
        """Keys pressed while a callback number is asked or read back: they are the number (read back again);
        None when no number is awaited (the keys mean what they always do)."""
        if request.desk.awaiting not in (Awaiting.CALLBACK, Awaiting.CONFIRM_MESSAGE):
            return None
        if len(digits) < MIN_CALLBACK_DIGITS or not digits.isdigit():
            return None
        details = (request.desk.message or MessageDetails()).model_copy(update={"callback_number": digits})
        return self._next_message_step(request, details)

    def _recipient_answer(self, request: BrainRequest, heard: str, details: MessageDetails) -> DeskReply:
        """Whom a message is for: a name of the directory (confirmed if unsure), or, for a name it lacks, a
        general message."""
        match = match_name(request.config, heard)
        if match is None:
            details.recipient = ""
            reply = self._next_message_step(request, details)
            text = f"There's no one by that name here, so I'll take a general message. {reply.text}"
            return DeskReply(text, reply.decision, reply.understood, reply.desk)
        if match.tied:
            text = f"Did you mean {match.target.name}? Please say the full name."
            return self._ask(text, Awaiting.MESSAGE_FOR, details)
        if not match.sure:
            return self._confirm_recipient(match, details)
        details.recipient = match.target.name
        return self._next_message_step(request, details)

    def _confirming_message(self, request: BrainRequest, heard: str, details: MessageDetails) -> DeskReply:
        """After the read-back: yes records the message; a correction (a number, a name, "my name is …")
        changes that detail and reads back again; "no" alone asks what to change."""
        if _is_yes(heard):
            return DeskReply(
                "Thank you. Please leave your message after the tone, and hang up when you are done.",
                Decision(Intent.TAKE_MESSAGE),
                desk=DeskState(message=details),
            )
        digits = spoken_digits(heard)
        match = match_name(request.config, heard)
        if len(digits) >= MIN_CALLBACK_DIGITS:
            details.callback_number = digits
        elif _NAME_INTRO.search(re.sub(r"^(no|sorry)\s+", "", heard)):
            details.caller_name = caller_name_in(re.sub(r"^(no|sorry)[,.]?\s+", "", request.caller_text, flags=re.I))
        elif match is not None and match.sure and _correcting(heard):
            details.recipient = match.target.name
        elif re.search(r"\bnumber\b", heard):
            details.callback_number = None
            return self._ask("What number can we call you back on?", Awaiting.CALLBACK, details)
        elif re.search(r"\bname\b", heard):
            details.caller_name = None
            return self._ask("May I have your name, please?", Awaiting.CALLER_NAME, details)
        elif re.search(r"\b(for|recipient|who)\b", heard):
            details.recipient = None
            return self._ask("Who is the message for?", Awaiting.MESSAGE_FOR, details)
        elif _NO.search(heard):
            return self._ask(
                "Sorry. What should I change: who it's for, your name, or the number?", Awaiting.CONFIRM_MESSAGE,
                details,
            )  # fmt: skip
        else:
            return self._failed(request, self._read_back(request.config, details))
        return self._ask(self._read_back(request.config, details), Awaiting.CONFIRM_MESSAGE, details)

    # -- facts -------------------------------------------------------------------------------------------

    @staticmethod
    def _hours_answer(request: BrainRequest, heard: str) -> str:
        """The answer to the question asked: whether it is open now ("Yes, we're open until 5 PM today."), one
        day's hours ("On Friday we're open 9 AM to 5 PM."), or else the whole week and whether it is open now."""
        hours = request.config.business_hours
        if hours is None:
            return "I'm sorry, I don't have our opening hours. Would you like me to put you through to someone?"
        local = request.now.astimezone(ZoneInfo(hours.timezone))
        if _NOW.search(heard):
            until = hours.open_until(request.now)
            if until is not None:
                return f"Yes, we're open until {spoken_time(until)} today."
            return f"No, we're closed at the moment.{_next_opening(hours, request.now)}"
        asked = _day_asked(heard, local.date())
        if asked is not None:
            day, when = asked
            spoken = hours.describe_day(day)
            return f"{when} we're open {spoken}." if spoken else f"{when} we're closed."
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
