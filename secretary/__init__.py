"""The core both transports share: tenants, conversation, speech, knowledge, calls.

Nothing in this package speaks HTTP or WebSocket; `ivr_service` and `bridge` are thin transports over it.
"""

__version__ = "0.1.0"
