-- keyward schema version 1 (SQLite). Timestamps are unix nanoseconds (UTC);
-- `*_key` columns hold the case-folded text that searches and sorts use.
CREATE TABLE users (
    id TEXT NOT NULL,
    site TEXT NOT NULL,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL,
    email TEXT,
    email_key TEXT,
    email_verified INTEGER NOT NULL,
    phone TEXT,
    phone_verified INTEGER NOT NULL,
    forename TEXT NOT NULL,
    forename_key TEXT NOT NULL,
    surname TEXT NOT NULL,
    surname_key TEXT NOT NULL,
    date_of_birth INTEGER,
    user_type TEXT NOT NULL,
    role TEXT NOT NULL,
    managed_sites TEXT NOT NULL,
    status TEXT NOT NULL,
    sso_linked INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    last_sign_in_ns INTEGER,
    pw_hash TEXT,
    pw_set_ns INTEGER,
    pw_tmp_mode TEXT,
    pw_tmp_expires_ns INTEGER,
    pw_tmp_issued_by TEXT,
    pw_tmp_batch TEXT,
    pw_tmp_consumed_ns INTEGER,
    pin_hash TEXT,
    pin_set_ns INTEGER,
    totp_secret TEXT,
    totp_last_step INTEGER,
    totp_reset_pending INTEGER NOT NULL,
    totp_pending_secret TEXT,
    dc_hash TEXT,
    dc_issued_ns INTEGER,
    dc_expires_ns INTEGER,
    dc_failed_tries INTEGER,
    rt_hash TEXT,
    rt_issued_ns INTEGER,
    rt_expires_ns INTEGER,
    rt_failed_tries INTEGER,
    pl_failed INTEGER NOT NULL,
    pl_in_flight INTEGER NOT NULL,
    pl_last_attempt_ns INTEGER,
    pl_last_failure_ns INTEGER,
    pl_locked_ns INTEGER,
    pl_lock_reason TEXT,
    pl_locked_until_ns INTEGER,
    pl_temporary_locks INTEGER NOT NULL,
    pl_unlocked_by TEXT,
    pl_unlocked_ns INTEGER,
    tl_failed INTEGER NOT NULL,
    tl_in_flight INTEGER NOT NULL,
    tl_last_attempt_ns INTEGER,
    tl_last_failure_ns INTEGER,
    tl_locked_ns INTEGER,
    tl_lock_reason TEXT,
    tl_locked_until_ns INTEGER,
    tl_temporary_locks INTEGER NOT NULL,
    tl_unlocked_by TEXT,
    tl_unlocked_ns INTEGER,
    CONSTRAINT users_pkey PRIMARY KEY (id)
) STRICT;
CREATE UNIQUE INDEX users_username ON users (site, username_key);
CREATE INDEX users_surname ON users (site, surname_key, forename_key, username_key, id);
CREATE INDEX users_forename ON users (site, forename_key, surname_key, username_key, id);
CREATE INDEX users_email ON users (site, email_key);
CREATE INDEX users_created ON users (site, created_ns, id);

CREATE TABLE user_groups (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    PRIMARY KEY (user_id, position)
) STRICT;
CREATE INDEX user_groups_name ON user_groups (site, name_key, name);
CREATE INDEX user_groups_member ON user_groups (site, name, user_id);

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ns INTEGER NOT NULL,
    actor TEXT,
    action TEXT NOT NULL,
    target TEXT,
    site TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    details TEXT
) STRICT;
CREATE INDEX audit_at ON audit (at_ns, seq);
CREATE INDEX audit_site ON audit (site, at_ns, seq);
CREATE INDEX audit_actor ON audit (actor, at_ns, seq);
CREATE INDEX audit_target ON audit (target, at_ns, seq);
