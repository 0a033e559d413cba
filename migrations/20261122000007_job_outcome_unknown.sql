-- Set when a job's previous attempt may have reached the provider without its answer being
-- recorded (a crash while running, or a timeout): the next attempt looks before it creates.
ALTER TABLE jobs ADD COLUMN outcome_unknown boolean NOT NULL DEFAULT false;
