-- Results for experimenters: hashed API tokens for the results JSON API, and a per-study cache of the
-- computed results (scaling + bootstrap), keyed by the options and by the data version (answer count).

CREATE TABLE api_tokens (
    id BIGINT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL
);

CREATE TABLE results_cache (
    study_id BIGINT NOT NULL REFERENCES studies(id),
    options TEXT NOT NULL,
    data_version TEXT NOT NULL,
    result_json TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (study_id, options)
);
