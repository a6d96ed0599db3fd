-- keyward schema version 1 (PostgreSQL). Timestamps are unix nanoseconds (UTC);
-- `*_key` columns hold the case-folded text that searches and sorts use.
CREATE TABLE users (
    id TEXT COLLATE "C" NOT NULL,
    site TEXT COLLATE "C" NOT NULL,
    username TEXT NOT NULL,
    username_key TEXT COLLATE "C" NOT NULL,
    email TEXT,
    email_key TEXT COLLATE "C",
    email_verified BOOLEAN NOT NULL,
    phone TEXT,
    phone_verified BOOLEAN NOT NULL,
    forename TEXT NOT NULL,
    forename_key TEXT COLLATE "C" NOT NULL,
    surname TEXT NOT NULL,
    surname_key TEXT COLLATE "C" NOT NULL,
    date_of_birth BIGINT,
    user_type TEXT NOT NULL,
    role TEXT NOT NULL,
    managed_sites TEXT NOT NULL,
    status TEXT NOT NULL,
    sso_linked BOOLEAN NOT NULL,
    created_ns BIGINT NOT NULL,
    last_sign_in_ns BIGINT,
    pw_hash TEXT,
    pw_set_ns BIGINT,
    pw_tmp_mode TEXT,
    pw_tmp_expires_ns BIGINT,
    pw_tmp_issued_by TEXT,
    pw_tmp_batch TEXT,
    pw_tmp_consumed_ns BIGINT,
    pin_hash TEXT,
    pin_set_ns BIGINT,
    totp_secret TEXT,
    totp_last_step BIGINT,
    totp_reset_pending BOOLEAN NOT NULL,
    totp_pending_secret TEXT,
    dc_hash TEXT,
    dc_issued_ns BIGINT,
    dc_expires_ns BIGINT,
    dc_failed_tries BIGINT,
    rt_hash TEXT,
    rt_issued_ns BIGINT,
    rt_expires_ns BIGINT,
    rt_failed_tries BIGINT,
    pl_failed BIGINT NOT NULL,
    pl_in_flight BIGINT NOT NULL,
    pl_last_attempt_ns BIGINT,
    pl_last_failure_ns BIGINT,
    pl_locked_ns BIGINT,
    pl_lock_reason TEXT,
    pl_locked_until_ns BIGINT,
    pl_temporary_locks BIGINT NOT NULL,
    pl_unlocked_by TEXT,
    pl_unlocked_ns BIGINT,
    tl_failed BIGINT NOT NULL,
    tl_in_flight BIGINT NOT NULL,
    tl_last_attempt_ns BIGINT,
    tl_last_failure_ns BIGINT,
    tl_locked_ns BIGINT,
    tl_lock_reason TEXT,
    tl_locked_until_ns BIGINT,
    tl_temporary_locks BIGINT NOT NULL,
    tl_unlocked_by TEXT,
    tl_unlocked_ns BIGINT,
    CONSTRAINT users_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX users_username ON users (site, username_key);
CREATE INDEX users_surname ON users (site, surname_key, forename_key, username_key, id);
CREATE INDEX users_forename ON users (site, forename_key, surname_key, username_key, id);
CREATE INDEX users_email ON users (site, email_key);
CREATE INDEX users_created ON users (site, created_ns, id);

CREATE TABLE user_groups (
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    site TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, position)
);
CREATE INDEX user_groups_name ON user_groups (site, name_key, name);
CREATE INDEX user_groups_member ON user_groups (site, name, user_id);

CREATE TABLE audit (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ns BIGINT NOT NULL,
    actor TEXT COLLATE "C",
    action TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C",
    site TEXT COLLATE "C" NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    details TEXT
);
CREATE INDEX audit_at ON audit (at_ns, seq);
CREATE INDEX audit_site ON audit (site, at_ns, seq);
CREATE INDEX audit_actor ON audit (actor, at_ns, seq);
CREATE INDEX audit_target ON audit (target, at_ns, seq);
