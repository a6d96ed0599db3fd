-- Usernames compared after Unicode compatibility normalization and case folding, and their
-- confusable skeleton (UTS #39) unique per site. Every key is recomputed in Rust right after
-- this file runs (the store's migration step for version 4), then the unique index on the
-- skeleton is created.
ALTER TABLE users ADD COLUMN username_skeleton TEXT NOT NULL DEFAULT '';
