"""FreeSWITCH as our code meets it: call control and a simulator of the parts we depend on (mod_lua's
`session`, mod_curl) that the tests and `voiceai call` run the real scripts against."""
