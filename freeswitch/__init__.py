"""FreeSWITCH as our code meets it: ESL call control, and simulators of the parts we depend on (mod_lua's
`session` and mod_curl, mod_audio_stream, the event socket) that the tests and `voiceai call` run against."""
