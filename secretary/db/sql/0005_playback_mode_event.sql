-- The community mod_audio_stream (the one the README builds) plays nothing itself: a new secretary
-- defaults to event playback (uuid_broadcast of its play events). Rows keep the mode they were given; a
-- call configured for `module` that meets the community build is moved to event mode by the bridge.
ALTER TABLE v_ai_secretaries ALTER COLUMN playback_mode SET DEFAULT 'event';
