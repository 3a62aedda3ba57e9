"""The realtime transport (v2): a WebSocket server for FreeSWITCH mod_audio_stream."""
