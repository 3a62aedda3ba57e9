"""What a turn ends with. The wire form (`type`, `destination`, `context`) is the v1 contract's `action`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class ActionType(StrEnum):
    CONTINUE = "continue"
    TRANSFER = "transfer"
    HANGUP = "hangup"
    TAKE_MESSAGE = "take_message"


class Action(BaseModel):
    type: ActionType = ActionType.CONTINUE
    destination: str | None = None
    context: str | None = None

    @classmethod
    def continue_(cls) -> Action:
        return cls(type=ActionType.CONTINUE)

    @classmethod
    def hangup(cls) -> Action:
        return cls(type=ActionType.HANGUP)

    @classmethod
    def transfer(cls, destination: str, context: str) -> Action:
        return cls(type=ActionType.TRANSFER, destination=destination, context=context)

    @classmethod
    def take_message(cls) -> Action:
        return cls(type=ActionType.TAKE_MESSAGE)

    @property
    def ends_conversation(self) -> bool:
        return self.type in (ActionType.TRANSFER, ActionType.HANGUP)

    def wire(self) -> dict[str, str]:
        out = {"type": self.type.value}
        if self.destination is not None:
            out["destination"] = self.destination
        if self.context is not None:
            out["context"] = self.context
        return out
