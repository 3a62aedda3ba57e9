"""FusionPBX's own tables, read (domains, extensions, ring groups, queues, voicemails) and, for the dialplan
installer, written. Flags are compared as `col::text = 'true'` and written as the quoted literal 'true', so
the same SQL works on FusionPBX ≤ 5.4 (text flags) and ≥ 5.5 (boolean flags)."""
