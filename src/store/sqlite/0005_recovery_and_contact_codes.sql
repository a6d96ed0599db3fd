-- Recovery codes (their digests, space-separated) and the code that verifies an email address
-- or phone number.
ALTER TABLE users ADD COLUMN totp_recovery TEXT;
ALTER TABLE users ADD COLUMN cc_hash TEXT;
ALTER TABLE users ADD COLUMN cc_issued_ns INTEGER;
ALTER TABLE users ADD COLUMN cc_expires_ns INTEGER;
ALTER TABLE users ADD COLUMN cc_failed_tries INTEGER;
