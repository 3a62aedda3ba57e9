-- A message's details, asked by the front desk and read back to the caller before the recording: whom it is
-- for (a directory entry's name; empty for the business in general), the caller's name as given, and the
-- number to call back on (offered from caller id, confirmed or corrected by the caller).
ALTER TABLE v_ai_messages
    ADD COLUMN message_for text NOT NULL DEFAULT '',
    ADD COLUMN caller_name text NOT NULL DEFAULT '',
    ADD COLUMN callback_number text NOT NULL DEFAULT '';
