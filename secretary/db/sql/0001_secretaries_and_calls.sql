-- Secretaries, their transfer directory, and the calls they answered.
-- FusionPBX conventions: v_ prefix, *_uuid keys, insert_/update_ columns, domain_uuid on every row.

CREATE TABLE v_ai_secretaries (
    ai_secretary_uuid     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_uuid           uuid NOT NULL UNIQUE REFERENCES v_domains (domain_uuid) ON DELETE CASCADE,
    secretary_name        text NOT NULL DEFAULT 'Alex',
    company_name          text NOT NULL DEFAULT '',
    secretary_language    text NOT NULL DEFAULT 'en',
    greeting              text NOT NULL DEFAULT '',
    farewell              text NOT NULL DEFAULT 'Thank you for calling. Goodbye!',
    instructions          text NOT NULL DEFAULT '',
    business_hours        jsonb,
    fallback_destination  text NOT NULL,
    max_turns             integer NOT NULL DEFAULT 20,
    max_call_seconds      integer NOT NULL DEFAULT 600,
    recording             jsonb NOT NULL DEFAULT '{}'::jsonb,
    faq                   jsonb NOT NULL DEFAULT '[]'::jsonb,
    providers             jsonb NOT NULL DEFAULT '{}'::jsonb,
    playback_mode         text NOT NULL DEFAULT 'module' CHECK (playback_mode IN ('module', 'event')),
    secretary_enabled     boolean NOT NULL DEFAULT true,
    insert_date           timestamptz NOT NULL DEFAULT now(),
    insert_user           uuid,
    update_date           timestamptz,
    update_user           uuid
);

CREATE TABLE v_ai_secretary_directory (
    ai_secretary_directory_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_uuid           uuid NOT NULL REFERENCES v_domains (domain_uuid) ON DELETE CASCADE,
    ai_secretary_uuid     uuid NOT NULL REFERENCES v_ai_secretaries (ai_secretary_uuid) ON DELETE CASCADE,
    target_name           text NOT NULL,
    target_aliases        jsonb NOT NULL DEFAULT '[]'::jsonb,
    target_extension      text NOT NULL,
    target_description    text NOT NULL DEFAULT '',
    target_order          integer NOT NULL DEFAULT 0,
    insert_date           timestamptz NOT NULL DEFAULT now(),
    update_date           timestamptz
);
CREATE INDEX v_ai_secretary_directory_secretary_idx ON v_ai_secretary_directory (ai_secretary_uuid, target_order);

CREATE TABLE v_ai_calls (
    ai_call_uuid          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_uuid           uuid NOT NULL REFERENCES v_domains (domain_uuid) ON DELETE CASCADE,
    call_uuid             uuid NOT NULL,
    transport             text NOT NULL,
    caller_id_number      text NOT NULL DEFAULT '',
    caller_id_name        text NOT NULL DEFAULT '',
    destination_number    text NOT NULL DEFAULT '',
    start_stamp           timestamptz NOT NULL,
    end_stamp             timestamptz NOT NULL,
    duration_ms           integer NOT NULL,
    turn_count            integer NOT NULL,
    outcome               text NOT NULL,
    outcome_destination   text,
    hangup_cause          text,
    usage                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    insert_date           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_uuid, call_uuid)
);
CREATE INDEX v_ai_calls_domain_start_idx ON v_ai_calls (domain_uuid, start_stamp DESC);

CREATE TABLE v_ai_call_turns (
    ai_call_turn_uuid     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ai_call_uuid          uuid NOT NULL REFERENCES v_ai_calls (ai_call_uuid) ON DELETE CASCADE,
    domain_uuid           uuid NOT NULL REFERENCES v_domains (domain_uuid) ON DELETE CASCADE,
    turn_index            integer NOT NULL,
    turn_stamp            timestamptz NOT NULL,
    caller_text           text NOT NULL DEFAULT '',
    secretary_text        text NOT NULL DEFAULT '',
    heard_text            text,
    action_type           text NOT NULL,
    action_destination    text,
    brain                 text,
    stt_ms                integer,
    brain_ms              integer,
    tts_ms                integer,
    total_ms              integer,
    recording_file        text,
    reply_file            text,
    UNIQUE (ai_call_uuid, turn_index)
);
