-- jndlab study platform schema. Portable SQL: runs on SQLite (the default, WAL mode) and PostgreSQL.
-- Ids are BIGINT assigned by the application (see app/src/server/db.rs `next_id`), so no backend-specific
-- autoincrement syntax is needed. Times are BIGINT unix milliseconds. Booleans are BIGINT 0/1.

CREATE TABLE admins (
    id BIGINT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    admin_id BIGINT NOT NULL REFERENCES admins(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE studies (
    id BIGINT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    question TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('draft', 'live', 'paused', 'closed')),
    trials_per_hit BIGINT NOT NULL,
    checks_per_hit BIGINT NOT NULL CHECK (checks_per_hit BETWEEN 0 AND 2),
    repetitions BIGINT NOT NULL,
    max_hits_per_worker BIGINT NOT NULL,
    hit_timeout_s BIGINT NOT NULL,
    approve_excluded BIGINT NOT NULL,
    prolific_completion_url TEXT NOT NULL,
    synthetic BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE conditions (
    id BIGINT PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies(id),
    position BIGINT NOT NULL,
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    UNIQUE (study_id, key)
);

CREATE TABLE scenes (
    id BIGINT PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies(id),
    position BIGINT NOT NULL,
    key TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    UNIQUE (study_id, key)
);

-- kind: 'reference' | 'condition' | 'check_bad' (generated or admin-supplied distorted copy for checks)
CREATE TABLE images (
    id BIGINT PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies(id),
    scene_id BIGINT NOT NULL REFERENCES scenes(id),
    condition_id BIGINT REFERENCES conditions(id),
    kind TEXT NOT NULL CHECK (kind IN ('reference', 'condition', 'check_bad')),
    file_name TEXT NOT NULL,
    source_path TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL
);

CREATE TABLE image_metrics (
    image_id BIGINT NOT NULL REFERENCES images(id),
    name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (image_id, name)
);

-- One row per (unordered condition pair, scene) of the full design; `repetitions` answers wanted each.
CREATE TABLE design_items (
    id BIGINT PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies(id),
    scene_id BIGINT NOT NULL REFERENCES scenes(id),
    condition_a BIGINT NOT NULL REFERENCES conditions(id),
    condition_b BIGINT NOT NULL REFERENCES conditions(id),
    UNIQUE (study_id, scene_id, condition_a, condition_b)
);

-- Attention checks: the reference (good) against an obviously distorted copy (bad).
CREATE TABLE check_items (
    id BIGINT PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies(id),
    scene_id BIGINT NOT NULL REFERENCES scenes(id),
    good_image_id BIGINT NOT NULL REFERENCES images(id),
    bad_image_id BIGINT NOT NULL REFERENCES images(id),
    source TEXT NOT NULL
);

-- platform: 'mturk' | 'prolific' | 'direct'; assignment_key identifies the HIT (MTurk assignmentId,
-- Prolific SESSION_ID, or a random id for direct links). status: 'active' | 'completed'.
CREATE TABLE hits (
    id BIGINT PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies(id),
    platform TEXT NOT NULL,
    assignment_key TEXT NOT NULL,
    worker_key TEXT NOT NULL,
    external_hit_id TEXT NOT NULL,
    turk_submit_to TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'completed')),
    excluded BIGINT NOT NULL,
    exclusion_reason TEXT NOT NULL,
    completion_code TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    completed_at BIGINT,
    UNIQUE (study_id, assignment_key)
);
CREATE INDEX hits_worker ON hits (study_id, worker_key);

-- kind: 'pair' (design_item_id set) | 'check' (check_item_id set, correct_side set).
-- answer: 'left' | 'right'; chosen_condition_id for pairs; rt_ms measured in the browser.
CREATE TABLE trials (
    id BIGINT PRIMARY KEY,
    hit_id BIGINT NOT NULL REFERENCES hits(id),
    position BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('pair', 'check')),
    design_item_id BIGINT REFERENCES design_items(id),
    check_item_id BIGINT REFERENCES check_items(id),
    reference_image_id BIGINT NOT NULL REFERENCES images(id),
    left_image_id BIGINT NOT NULL REFERENCES images(id),
    right_image_id BIGINT NOT NULL REFERENCES images(id),
    correct_side TEXT,
    answer TEXT,
    chosen_condition_id BIGINT REFERENCES conditions(id),
    rt_ms BIGINT,
    answered_at BIGINT,
    UNIQUE (hit_id, position)
);
CREATE INDEX trials_item ON trials (design_item_id);

CREATE TABLE blocked_workers (
    study_id BIGINT NOT NULL REFERENCES studies(id),
    worker_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (study_id, worker_key)
);
