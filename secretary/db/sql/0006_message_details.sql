-- A message's details, asked by the front desk and read back to the caller before the recording: whom it is
-- for (a directory entry's name; empty for the business in general), the caller's name as given, and the
-- number to call back on (offered from caller id, confirmed or corrected by the caller). Nullable, as 0004
-- has it: FusionPBX's save() writes NULL for an empty field, and our readers take NULL as ''.
ALTER TABLE v_ai_messages
    ADD COLUMN message_for text DEFAULT '',
    ADD COLUMN caller_name text DEFAULT '',
    ADD COLUMN callback_number text DEFAULT '';
