-- Documents uploaded for a user (POST /v1/users/{id}/documents) and their submission to each
-- linked provider (README "Verification", "Documents").
--
-- `documents` is the metadata the API lists: never the bytes, which live sealed in
-- `document_files` (one row per document) so a list never reads them. The caller's
-- `verification` attestation is sealed too (`verification`, key id beside it). Seals are
-- AES-256-GCM under the data key named in the `*_key_id` column, bound to
-- `table.column:<document id>`, and re-sealed on key rotation like the profile.
--
-- Erasure deletes the files, the sealed attestations and the SHA-256, and sets `erased_at`: what
-- stays is the kind of document, its size and times, and where it was submitted (the provider's
-- id for it), which is what a manual deletion request at a provider needs.
CREATE TABLE documents (
    id                  uuid        PRIMARY KEY,
    user_id             uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type                text        NOT NULL,
    side                text,
    content_type        text        NOT NULL,
    size                bigint      NOT NULL,
    -- Hex SHA-256 of the file (returned to the caller; cleared by erasure).
    sha256              text,
    verification        bytea,
    verification_key_id text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    erased_at           timestamptz,
    CONSTRAINT documents_side_check CHECK (side IN ('front', 'back')),
    CONSTRAINT documents_size_check CHECK (size > 0)
);
CREATE INDEX documents_user_id_idx ON documents (user_id, id);
CREATE INDEX documents_verification_key_id_idx ON documents (verification_key_id)
    WHERE verification_key_id IS NOT NULL;

CREATE TABLE document_files (
    document_id uuid  PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    file        bytea NOT NULL,
    file_key_id text  NOT NULL
);
CREATE INDEX document_files_file_key_id_idx ON document_files (file_key_id);

-- One row per (document, provider): `pending` until the provider answers, then `submitted`
-- (with the provider's id when it gives one), `rejected` (the provider refused it, or a provider
-- linked later whose rules it breaks) or `not_supported` (the provider takes no such document).
--
-- A pending submission is in one of three states: held (`hold_until`: a two-sided document's
-- front waiting for its back, with a timer job), waiting for its link (`waiting_for_link`: the
-- link has no provider account yet; the link's successful submission enqueues it), or queued
-- (a `submit_document` job will send it). `partner_document_id` pairs a front with its back,
-- sent in one call to providers that want both sides together.
CREATE TABLE document_submissions (
    document_id          uuid        NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    provider             text        NOT NULL,
    status               text        NOT NULL DEFAULT 'pending',
    provider_document_id text,
    last_error           jsonb,
    submitted_at         timestamptz,
    hold_until           timestamptz,
    waiting_for_link     boolean     NOT NULL DEFAULT false,
    partner_document_id  uuid        REFERENCES documents (id) ON DELETE SET NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT document_submissions_pkey PRIMARY KEY (document_id, provider),
    CONSTRAINT document_submissions_status_check
        CHECK (status IN ('pending', 'submitted', 'rejected', 'not_supported'))
);
CREATE INDEX document_submissions_waiting_idx ON document_submissions (provider, document_id)
    WHERE waiting_for_link;

-- Set when some submission of this link waits for the link's provider account: the link's
-- first answer then takes the locked path, which enqueues them in the same transaction.
ALTER TABLE provider_links ADD COLUMN documents_waiting boolean NOT NULL DEFAULT false;
