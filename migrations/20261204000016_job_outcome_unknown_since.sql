-- When the first attempt whose answer was lost (a timeout, a dropped connection, a worker that
-- died mid-call) started: the account it may have created dates from then, and a link flagged
-- for review says so, so ops can find the account at the provider.
ALTER TABLE jobs ADD COLUMN outcome_unknown_since timestamptz;
