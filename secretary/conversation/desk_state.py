"""What the front desk just asked, kept in the call's state between turns (a v1 call's turns can land on any
replica), so the caller's next words are read as the answer to it: a name, a yes or no, a phone number."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class Awaiting(StrEnum):
    NOTHING = "nothing"
    NAME = "name"  # "Who would you like to speak to?"
    CONFIRM_NAME = "confirm_name"  # "Just to check: Dr. Miller. Is that right?"
    OFFER = "offer"  # "Shall I take a message, or put you through to reception?"
    MESSAGE_FOR = "message_for"  # "Who is the message for?"
    CALLER_NAME = "caller_name"  # "May I have your name?"
    CALLBACK = "callback"  # "What number can we call you back on?"
    CONFIRM_MESSAGE = "confirm_message"  # the details read back: "… Is that right?"


class MessageDetails(BaseModel):
    """A message's details, gathered before the caller records it: saved and delivered with it."""

    # None: not asked yet; "": asked, and none given (the business in general, for the recipient)
    recipient: str | None = None  # a directory entry's name
    caller_name: str | None = None
    callback_number: str | None = None  # digits


class DeskState(BaseModel):
    awaiting: Awaiting = Awaiting.NOTHING
    candidate: str | None = None  # the directory entry to confirm (CONFIRM_NAME)
    for_message: bool = False  # the name asked or confirmed is the message's recipient, not a transfer
    message: MessageDetails | None = None  # a message being taken (its details so far)
