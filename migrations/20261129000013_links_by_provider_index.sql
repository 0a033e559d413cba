-- `GET /v1/users?provider=…` walks this index backwards (newest users first) and stops at the
-- page size. Without it the planner could only probe each user's links, and once the tables
-- grew it switched to joining every link of the provider and sorting the whole set (the
-- benchmark's soak saw 1 s lists; README "Performance").
CREATE INDEX IF NOT EXISTS provider_links_provider_user_idx ON provider_links (provider, user_id);
