-- The lock counters' epochs: an unlock starts a new one, and reservations taken before it
-- settle without counting.
ALTER TABLE users ADD COLUMN pl_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN tl_epoch BIGINT NOT NULL DEFAULT 0;
