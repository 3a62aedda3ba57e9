"""Realtime engines: what turns a caller's audio into the secretary's voice, one instance per call."""
