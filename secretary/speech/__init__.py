"""Speech: audio formats, the STT / TTS / VAD interfaces, their engines and the provider factory."""
