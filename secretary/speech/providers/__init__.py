"""Cloud and self-hosted speech providers behind the `SpeechToText` / `TextToSpeech` interfaces."""
