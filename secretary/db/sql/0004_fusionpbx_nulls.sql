-- Accept what FusionPBX writes. Its database::save() turns '' into NULL (and, on insert, a PHP false too:
-- it tests `$value == ''`), so a FusionPBX page saving one of our rows with an empty field writes NULL.
-- Columns that have a default lose NOT NULL; our readers take NULL as that default ('' for text, the
-- secretary's defaults for its settings, "disabled" for a flag, as FusionPBX's own `= true` queries do).
-- Keys, references and what only we write and always fill (hashes, ciphertext, stamps) keep NOT NULL.

ALTER TABLE v_ai_secretaries
    ALTER COLUMN secretary_name DROP NOT NULL,
    ALTER COLUMN company_name DROP NOT NULL,
    ALTER COLUMN secretary_language DROP NOT NULL,
    ALTER COLUMN greeting DROP NOT NULL,
    ALTER COLUMN farewell DROP NOT NULL,
    ALTER COLUMN instructions DROP NOT NULL,
    ALTER COLUMN max_turns DROP NOT NULL,
    ALTER COLUMN max_call_seconds DROP NOT NULL,
    ALTER COLUMN recording DROP NOT NULL,
    ALTER COLUMN faq DROP NOT NULL,
    ALTER COLUMN providers DROP NOT NULL,
    ALTER COLUMN playback_mode DROP NOT NULL,
    ALTER COLUMN secretary_enabled DROP NOT NULL,
    ALTER COLUMN messages DROP NOT NULL;

ALTER TABLE v_ai_secretary_directory
    ALTER COLUMN target_aliases DROP NOT NULL,
    ALTER COLUMN target_description DROP NOT NULL,
    ALTER COLUMN target_order DROP NOT NULL;

ALTER TABLE v_ai_calls
    ALTER COLUMN caller_id_number DROP NOT NULL,
    ALTER COLUMN caller_id_name DROP NOT NULL,
    ALTER COLUMN destination_number DROP NOT NULL;

ALTER TABLE v_ai_call_turns
    ALTER COLUMN caller_text DROP NOT NULL,
    ALTER COLUMN secretary_text DROP NOT NULL;

ALTER TABLE v_ai_api_keys
    ALTER COLUMN key_description DROP NOT NULL,
    ALTER COLUMN key_enabled DROP NOT NULL;

ALTER TABLE v_ai_provider_credentials
    ALTER COLUMN credential_description DROP NOT NULL,
    ALTER COLUMN secret_hint DROP NOT NULL;

ALTER TABLE v_ai_messages
    ALTER COLUMN caller_id_number DROP NOT NULL,
    ALTER COLUMN caller_id_name DROP NOT NULL,
    ALTER COLUMN transcript DROP NOT NULL;
