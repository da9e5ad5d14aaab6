-- Study data that cannot be gamed (issue 13): unguessable per-HIT image tokens, quality-control flags, design
-- counters that stop the study when it is full, answers in order with server-side timing.
-- Additive only (existing databases keep every row); values the earlier schema constrains with CHECK stay
-- within it: a design that filled is state 'closed' with closed_reason 'complete', an abandoned HIT is
-- status 'active' with abandoned_at set (the application's typed states map both).

-- Studies: why a closed study ended, the design's fill, a counter bumped whenever any HIT's flags change
-- (part of the results' data version), and the quality-control rules (README "Quality control").
ALTER TABLE studies ADD COLUMN closed_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE studies ADD COLUMN valid_answers BIGINT NOT NULL DEFAULT 0;
ALTER TABLE studies ADD COLUMN flags_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE studies ADD COLUMN min_response_ms BIGINT NOT NULL DEFAULT 300;
ALTER TABLE studies ADD COLUMN max_fast_share DOUBLE PRECISION NOT NULL DEFAULT 0.2;
ALTER TABLE studies ADD COLUMN straight_line_alpha DOUBLE PRECISION NOT NULL DEFAULT 0.01;
ALTER TABLE studies ADD COLUMN outlier_fence DOUBLE PRECISION NOT NULL DEFAULT 1.5;
ALTER TABLE studies ADD COLUMN qc_scope TEXT NOT NULL DEFAULT 'hit';
-- Bit mask of the flags that exclude a HIT (app/src/server/quality.rs `Flags`); 39 = failed_check | too_fast |
-- straight_line | unverified (blocked workers are always excluded).
ALTER TABLE studies ADD COLUMN exclude_flags BIGINT NOT NULL DEFAULT 39;

-- Answers held by each (pair, scene) item: valid ones plus those of HITs in flight. No HIT is handed an item
-- whose load has reached the study's repetitions.
ALTER TABLE design_items ADD COLUMN load BIGINT NOT NULL DEFAULT 0;

-- HITs: the random token the browser sends (never a platform id), the per-browser id of direct links, the
-- progress (trials answered in order), when the current trial was shown (server clock), the counters of the
-- quality rules, the flags, and whether an invalid HIT's items went back to the pool.
ALTER TABLE hits ADD COLUMN token TEXT;
ALTER TABLE hits ADD COLUMN browser_key TEXT NOT NULL DEFAULT '';
ALTER TABLE hits ADD COLUMN total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hits ADD COLUMN pairs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hits ADD COLUMN answered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hits ADD COLUMN shown_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hits ADD COLUMN fast_answers BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hits ADD COLUMN left_answers BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hits ADD COLUMN failed_checks BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hits ADD COLUMN flags BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hits ADD COLUMN abandoned_at BIGINT;
ALTER TABLE hits ADD COLUMN released BIGINT NOT NULL DEFAULT 0;

-- Trials: the conditions shown on each side (so an answer is one UPDATE), and the response time measured by
-- the server (from the moment the trial was sent to the answer), which a client cannot forge downwards.
ALTER TABLE trials ADD COLUMN left_condition_id BIGINT REFERENCES conditions(id);
ALTER TABLE trials ADD COLUMN right_condition_id BIGINT REFERENCES conditions(id);
ALTER TABLE trials ADD COLUMN server_rt_ms BIGINT;

-- Image URLs participants see: /media/{token}, one random token per (HIT, trial, slot), so neither the
-- condition nor the attention check follows from a URL. hit_id NULL: the study's preview example.
-- slot: 0 reference, 1 left, 2 right.
CREATE TABLE media_tokens (
    token TEXT PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies(id),
    hit_id BIGINT REFERENCES hits(id),
    position BIGINT NOT NULL,
    slot BIGINT NOT NULL,
    image_id BIGINT NOT NULL REFERENCES images(id)
);
CREATE INDEX media_tokens_hit ON media_tokens (hit_id);
CREATE INDEX media_tokens_example ON media_tokens (study_id, hit_id);

-- Every image of a scene is served padded to the same length, so sizes do not tell images apart.
ALTER TABLE scenes ADD COLUMN served_bytes BIGINT NOT NULL DEFAULT 0;

-- Backfill from the earlier schema.
UPDATE hits SET token = 'legacy' || CAST(id AS TEXT);
CREATE UNIQUE INDEX hits_token ON hits (token);
CREATE INDEX hits_open ON hits (study_id, status, last_seen_at);
UPDATE hits SET
    total = (SELECT COUNT(*) FROM trials t WHERE t.hit_id = hits.id),
    pairs = (SELECT COUNT(*) FROM trials t WHERE t.hit_id = hits.id AND t.kind = 'pair'),
    answered = (SELECT COUNT(*) FROM trials t WHERE t.hit_id = hits.id AND t.answer IS NOT NULL),
    left_answers = (SELECT COUNT(*) FROM trials t WHERE t.hit_id = hits.id AND t.answer = 'left'),
    failed_checks = (SELECT COUNT(*) FROM trials t WHERE t.hit_id = hits.id AND t.kind = 'check'
                     AND t.answer IS NOT NULL AND t.answer <> t.correct_side),
    shown_at = last_seen_at,
    flags = excluded;
UPDATE hits SET flags = flags | 16, excluded = 1
    WHERE EXISTS (SELECT 1 FROM blocked_workers b WHERE b.study_id = hits.study_id AND b.worker_key = hits.worker_key);
UPDATE trials SET
    left_condition_id = (SELECT i.condition_id FROM images i WHERE i.id = trials.left_image_id),
    right_condition_id = (SELECT i.condition_id FROM images i WHERE i.id = trials.right_image_id);
UPDATE design_items SET load = (
    SELECT COUNT(*) FROM trials t JOIN hits h ON h.id = t.hit_id
    WHERE t.design_item_id = design_items.id AND h.excluded = 0);
UPDATE studies SET valid_answers = (
    SELECT COUNT(*) FROM trials t JOIN hits h ON h.id = t.hit_id
    WHERE h.study_id = studies.id AND t.kind = 'pair' AND h.status = 'completed' AND h.excluded = 0);
UPDATE hits SET released = 1 WHERE excluded = 1;

-- The number of (pair, scene) items, so "the design is full" is one comparison: valid_answers >= design_size x repetitions.
ALTER TABLE studies ADD COLUMN design_size BIGINT NOT NULL DEFAULT 0;
UPDATE studies SET design_size = (SELECT COUNT(*) FROM design_items d WHERE d.study_id = studies.id);
-- A random permutation of the items, rotated by a random offset at each HIT start: random order among
-- items of equal load without reading them all.
ALTER TABLE design_items ADD COLUMN shuffle BIGINT NOT NULL DEFAULT 0;
UPDATE design_items SET shuffle = (id * 7919) % 1000003;
CREATE INDEX design_items_load ON design_items (study_id, load);
CREATE INDEX hits_unreleased ON hits (study_id, released);

-- Admins' trusted devices (OWASP "device cookies"): a browser that logged in before keeps a random cookie,
-- stored hashed, so failed logins from elsewhere (per-user backoff) never slow the real admin down.
CREATE TABLE admin_devices (
    token_hash TEXT PRIMARY KEY,
    admin_id BIGINT NOT NULL REFERENCES admins(id),
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);
