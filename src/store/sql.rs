//! SQL fragments for the facts several statements write: each is written once, here, and
//! composed with `concat!` into the statements that need it (static SQL, one round trip each).
//! A fragment takes its parameters as `$n` literals, and the rows it writes travel as one JSON
//! parameter built next to it (`events::rows`, `jobs::rows`), so adding a column is one edit.
//! `when` is a condition the write depends on (`true` when it has none).

/// Appends events to a user's audit trail, in the order given. `events`: the JSON array of
/// [`super::events::rows`].
macro_rules! append_events {
    (user = $user:literal, events = $events:literal, when = $when:literal) => {
        concat!(
            "INSERT INTO user_events (id, user_id, type, data)
             SELECT (e.event->>'id')::uuid, ",
            $user,
            ", e.event->>'type', e.event->'data'
               FROM jsonb_array_elements(",
            $events,
            ") WITH ORDINALITY AS e(event, n)
              WHERE ",
            $when,
            " ORDER BY n"
        )
    };
}

/// Marks a job done.
macro_rules! complete_job {
    (id = $id:literal, when = $when:literal) => {
        concat!(
            "UPDATE jobs SET state = 'succeeded', locked_by = NULL, locked_until = NULL,
                    last_error = NULL, updated_at = now()
              WHERE id = ",
            $id,
            " AND ",
            $when
        )
    };
}

/// Stores a user's summary status (computed from its links by the caller); the row is left
/// alone when the status is already so.
macro_rules! set_summary_status {
    (user = $user:literal, status = $status:literal, when = $when:literal) => {
        concat!(
            "UPDATE users SET status = ",
            $status,
            ", updated_at = now() WHERE id = ",
            $user,
            " AND status <> ",
            $status,
            " AND ",
            $when
        )
    };
}

/// Enqueues jobs. `jobs`: the JSON array of [`super::jobs::rows`].
macro_rules! insert_jobs {
    (jobs = $jobs:literal) => {
        concat!(
            "INSERT INTO jobs (id, kind, queue_key, payload, max_attempts, run_at, state,
                               attempts, locked_by, locked_until)
             SELECT (j->>'id')::uuid, j->>'kind', j->>'queue_key', j->'payload',
                    (j->>'max_attempts')::int,
                    now() + make_interval(secs => (j->>'delay_secs')::float8),
                    j->>'state', (j->>'attempts')::int, j->>'locked_by',
                    now() + make_interval(secs => (j->>'lease_secs')::float8)
               FROM jsonb_array_elements(",
            $jobs,
            ") AS j"
        )
    };
}
