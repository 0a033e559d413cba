-- Provider-specific facts kept with a link (e.g. Carbn's terms-consent id), and a flag for links
-- that need an operator's look (unknown provider status, suspected duplicate account).
ALTER TABLE provider_links
    ADD COLUMN provider_data jsonb   NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN needs_review  boolean NOT NULL DEFAULT false;
