-- Admin API keys, provider credentials (encrypted at rest) and the messages the secretary takes.
-- FusionPBX conventions: v_ prefix, *_uuid keys, insert_/update_ columns, domain_uuid with ON DELETE CASCADE.

-- The messages section of a secretary (e-mail recipients, webhook) lives with the rest of its settings.
ALTER TABLE v_ai_secretaries ADD COLUMN messages jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Admin API keys. Only a SHA-256 of the key is kept; the key itself is shown once, when created.
-- A superadmin key has no domain: the scope column says so, and the check keeps the two consistent
-- (a NULL domain_uuid is never checked against v_domains, so the FK still guards domain keys).
CREATE TABLE v_ai_api_keys (
    ai_api_key_uuid       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key_scope             text NOT NULL CHECK (key_scope IN ('domain', 'superadmin')),
    domain_uuid           uuid REFERENCES v_domains (domain_uuid) ON DELETE CASCADE,
    key_prefix            text NOT NULL,
    key_hash              text NOT NULL UNIQUE,
    key_description       text NOT NULL DEFAULT '',
    key_enabled           boolean NOT NULL DEFAULT true,
    last_used_date        timestamptz,
    insert_date           timestamptz NOT NULL DEFAULT now(),
    update_date           timestamptz,
    CHECK ((key_scope = 'domain') = (domain_uuid IS NOT NULL))
);
CREATE INDEX v_ai_api_keys_domain_idx ON v_ai_api_keys (domain_uuid);

-- Provider credentials (API keys of cloud engines, webhook secrets), encrypted with VOICEAI_SECRET_KEY.
-- A domain's provider spec names one by credential_name (`api_key_ref`).
CREATE TABLE v_ai_provider_credentials (
    ai_provider_credential_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_uuid           uuid NOT NULL REFERENCES v_domains (domain_uuid) ON DELETE CASCADE,
    credential_name       text NOT NULL,
    credential_description text NOT NULL DEFAULT '',
    encrypted_secret      text NOT NULL,
    secret_hint           text NOT NULL DEFAULT '',
    insert_date           timestamptz NOT NULL DEFAULT now(),
    update_date           timestamptz,
    UNIQUE (domain_uuid, credential_name)
);

-- Messages taken for the domain's people: the caller's words, audio and caller id.
CREATE TABLE v_ai_messages (
    ai_message_uuid       uuid PRIMARY KEY,
    domain_uuid           uuid NOT NULL REFERENCES v_domains (domain_uuid) ON DELETE CASCADE,
    call_uuid             uuid NOT NULL,
    caller_id_number      text NOT NULL DEFAULT '',
    caller_id_name        text NOT NULL DEFAULT '',
    transcript            text NOT NULL DEFAULT '',
    audio_file            text,
    message_status        text NOT NULL DEFAULT 'new' CHECK (message_status IN ('new', 'handled')),
    handled_date          timestamptz,
    insert_date           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX v_ai_messages_domain_date_idx ON v_ai_messages (domain_uuid, insert_date DESC);

-- One row per channel a message goes out on; the courier retries pending rows with backoff.
CREATE TABLE v_ai_message_deliveries (
    ai_message_delivery_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ai_message_uuid       uuid NOT NULL REFERENCES v_ai_messages (ai_message_uuid) ON DELETE CASCADE,
    domain_uuid           uuid NOT NULL REFERENCES v_domains (domain_uuid) ON DELETE CASCADE,
    delivery_channel      text NOT NULL CHECK (delivery_channel IN ('email', 'webhook')),
    delivery_destination  text NOT NULL,
    delivery_state        text NOT NULL DEFAULT 'pending' CHECK (delivery_state IN ('pending', 'delivered', 'failed')),
    attempts              integer NOT NULL DEFAULT 0,
    next_attempt_date     timestamptz NOT NULL DEFAULT now(),
    last_error            text,
    delivered_date        timestamptz,
    UNIQUE (ai_message_uuid, delivery_channel)
);
CREATE INDEX v_ai_message_deliveries_due_idx ON v_ai_message_deliveries (next_attempt_date)
    WHERE delivery_state = 'pending';
