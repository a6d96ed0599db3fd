-- The lock counters' epochs: an unlock starts a new one, and reservations taken before it
-- settle without counting.
ALTER TABLE users ADD COLUMN pl_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN tl_epoch BIGINT NOT NULL DEFAULT 0;
-- Admin screens look up a site's staff (administrators, moderators) on every search to leave
-- out whom the actor may not see: by role, on an index.
CREATE INDEX users_role ON users (site, role);
