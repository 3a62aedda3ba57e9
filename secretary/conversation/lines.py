"""The secretary's fixed lines, the same in every mode (turn-based and realtime): each is said as is, so its
audio comes from the TTS cache after the first call."""

from __future__ import annotations

STILL_THERE = "Are you still there?"
NOBODY_THERE = "I can't hear anyone, so I'll end the call now. Goodbye!"
APOLOGY = "I'm sorry, I'm having trouble right now. Let me put you through to a colleague."
TIME_LIMIT = "I'm sorry, we have to end here. Let me put you through to a colleague."
MESSAGE_TAKEN = "Thank you, I have taken your message."
RESUMED = "Sorry, we were cut off for a moment. How can I help you?"  # after a realtime call fell back to turns
