-- racemine warehouse, schema version 10.
-- Applied by warehouse.db.ensure_schema; every statement is idempotent.
-- Natural keys are the primary keys, so every save is an upsert and re-running
-- anything never duplicates a row.

CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

-- One row per repository ever mined or discovered.
CREATE TABLE IF NOT EXISTS repos (
    repo            VARCHAR PRIMARY KEY,  -- canonical name: host/owner/name, or local/<folder>
    url             VARCHAR,              -- clone URL; NULL for a local path
    language        VARCHAR,              -- primary language, when known (elixir | erlang | mixed)
    stars           INTEGER,
    license         VARCHAR,              -- SPDX expression ("MIT", "Apache-2.0 OR MIT"), when known
    license_source  VARCHAR,              -- github (discovery) or the file it was read from
    default_branch  VARCHAR,
    last_mined_sha  VARCHAR,              -- HEAD when the last mine of this repo finished
    mined_tips      VARCHAR[],            -- every tip the last mine covered (high-water mark)
    last_mined_at   TIMESTAMPTZ,
    archived        BOOLEAN,              -- discovery facts (GitHub), NULL when not discovered
    fork            BOOLEAN,
    pushed_at       TIMESTAMPTZ,
    topics          VARCHAR[],
    discovered_at   TIMESTAMPTZ
);
ALTER TABLE repos ADD COLUMN IF NOT EXISTS archived BOOLEAN;
ALTER TABLE repos ADD COLUMN IF NOT EXISTS fork BOOLEAN;
ALTER TABLE repos ADD COLUMN IF NOT EXISTS pushed_at TIMESTAMPTZ;
ALTER TABLE repos ADD COLUMN IF NOT EXISTS topics VARCHAR[];
ALTER TABLE repos ADD COLUMN IF NOT EXISTS discovered_at TIMESTAMPTZ;
ALTER TABLE repos ADD COLUMN IF NOT EXISTS license_source VARCHAR;
-- Where a local repository was mined from: `racemine szz` blames a clone of it.
ALTER TABLE repos ADD COLUMN IF NOT EXISTS local_path VARCHAR;

-- Conditional-request cache for API pages: an unchanged page (HTTP 304) costs no quota.
CREATE TABLE IF NOT EXISTS http_cache (
    url         VARCHAR PRIMARY KEY,
    etag        VARCHAR NOT NULL,
    body        VARCHAR NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL
);

-- Commits whose message matched the classifier (merges included, flagged).
CREATE TABLE IF NOT EXISTS commits (
    repo            VARCHAR NOT NULL,
    sha             VARCHAR NOT NULL,
    parents         VARCHAR[] NOT NULL,
    is_merge        BOOLEAN NOT NULL,
    author_name     VARCHAR,
    author_date     TIMESTAMPTZ,
    committer_date  TIMESTAMPTZ,
    subject         VARCHAR NOT NULL,
    message         VARCHAR NOT NULL,
    matched_terms   VARCHAR[] NOT NULL,
    match_score     DOUBLE NOT NULL,
    patch_id        VARCHAR,              -- git patch-id --stable (filled by dedupe)
    n_files         INTEGER,              -- Elixir/Erlang files changed
    run_id          VARCHAR NOT NULL,     -- the run that stored this row
    PRIMARY KEY (repo, sha)
);

-- One row per changed Elixir/Erlang file of a matching non-merge commit.
CREATE TABLE IF NOT EXISTS file_changes (
    repo            VARCHAR NOT NULL,
    sha             VARCHAR NOT NULL,
    path            VARCHAR NOT NULL,     -- path after the change (before, for a deletion)
    old_path        VARCHAR,              -- path before a rename or copy
    change_type     VARCHAR NOT NULL,     -- added | deleted | modified | renamed | copied | type_changed
    language        VARCHAR NOT NULL,     -- elixir | erlang
    is_test         BOOLEAN NOT NULL,
    before          VARCHAR,              -- full text before; NULL when added or skipped
    after           VARCHAR,              -- full text after; NULL when deleted or skipped
    diff            VARCHAR,              -- git's unified diff of this file
    lines_added     INTEGER NOT NULL,     -- 0 for a file over the size cap: it is never diffed
    lines_removed   INTEGER NOT NULL,
    skipped_reason  VARCHAR,              -- binary | too_large | undecodable | lfs_pointer; NULL when kept
    run_id          VARCHAR NOT NULL,
    parse_status    VARCHAR,              -- parsed | partial | syntax_error (function extraction)
    PRIMARY KEY (repo, sha, path)
);
ALTER TABLE file_changes ADD COLUMN IF NOT EXISTS parse_status VARCHAR;

-- Functions added, removed or changed by a file pair: every clause of one name/arity
-- in one module as one unit (tree-sitter). ExUnit `test "..."` blocks are units too.
CREATE TABLE IF NOT EXISTS function_changes (
    repo            VARCHAR NOT NULL,
    sha             VARCHAR NOT NULL,
    path            VARCHAR NOT NULL,
    module          VARCHAR NOT NULL,     -- '' when the file declares none
    function        VARCHAR NOT NULL,     -- name/arity, or test "description"
    kind            VARCHAR NOT NULL,     -- def | defp | defmacro | defmacrop | defguard | defdelegate | test | function
    change          VARCHAR NOT NULL,     -- added | removed | modified
    before_start    INTEGER, before_end INTEGER,  -- 1-based inclusive lines in the before text
    after_start     INTEGER, after_end  INTEGER,
    before          VARCHAR,
    after           VARCHAR,
    run_id          VARCHAR NOT NULL,
    PRIMARY KEY (repo, sha, path, module, function)
);

-- Labels. target is '' for a label of the whole commit, else the file path it labels.
CREATE TABLE IF NOT EXISTS annotations (
    repo               VARCHAR NOT NULL,
    sha                VARCHAR NOT NULL,
    target             VARCHAR NOT NULL,
    annotator          VARCHAR NOT NULL,  -- id: kind/model + prompt or rules hash + schema version
    status             VARCHAR NOT NULL,  -- ok | failed
    failure            VARCHAR,           -- why, when status = failed
    is_concurrency_bug BOOLEAN,
    bug_type           VARCHAR,
    scope              VARCHAR,           -- production | test
    location_file      VARCHAR,
    location_function  VARCHAR,
    location_start     INTEGER,           -- line range in the before version
    location_end       INTEGER,
    event_sequence     VARCHAR[],
    explanation        VARCHAR,
    fix_summary        VARCHAR,
    confidence         DOUBLE,
    evidence           VARCHAR[],         -- the signals a heuristic label rests on
    raw_response       VARCHAR,
    tokens_in          INTEGER,
    tokens_out         INTEGER,
    cost_usd           DOUBLE,
    latency_ms         DOUBLE,
    run_id             VARCHAR NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    input_hash         VARCHAR,           -- hash of what the annotator saw (the label cache key)
    input_note         VARCHAR,           -- what an input cap left out
    is_plausible       BOOLEAN,           -- the skeptical reviewer's verdict (--verify)
    critique           VARCHAR,
    verifier           VARCHAR,           -- reviewer model + prompt hash
    PRIMARY KEY (repo, sha, target, annotator)
);
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS input_hash VARCHAR;
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS input_note VARCHAR;
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS is_plausible BOOLEAN;
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS reasks INTEGER;       -- re-asks after unusable answers
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS extra_fields JSON;    -- reply keys the schema does not name
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS critique VARCHAR;
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS verifier VARCHAR;
-- The interleaving as data, one struct per step (the event_steps view has a row each): who
-- acts, how (a closed set of actions), on whom, where in the before version, and what the
-- trace checks and the reviewer said of that step. event_sequence is its text rendering.
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS steps STRUCT(
    step INTEGER, actor VARCHAR, action VARCHAR, target VARCHAR, file VARCHAR,
    "function" VARCHAR, line INTEGER, note VARCHAR, check_ok BOOLEAN, check_failure VARCHAR,
    reviewer_ok BOOLEAN, reviewer_note VARCHAR)[];
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS analysis VARCHAR;            -- the reasoning before the verdict
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS explanation_source VARCHAR;  -- model | rule:<name> | none: <why>
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS checks_passed BOOLEAN;       -- the trace checks (annotators/checks.py)
ALTER TABLE annotations ADD COLUMN IF NOT EXISTS check_failures VARCHAR[];    -- why each failed check failed

-- The ledger: one row per LLM request (retries folded in), what it cost and how it went.
CREATE TABLE IF NOT EXISTS llm_calls (
    run_id      VARCHAR NOT NULL,
    repo        VARCHAR NOT NULL,
    sha         VARCHAR NOT NULL,
    annotator   VARCHAR NOT NULL,
    seq         INTEGER NOT NULL,         -- order of the request for this commit in this run
    kind        VARCHAR NOT NULL,         -- label | reask | verify
    status      VARCHAR NOT NULL,         -- ok | invalid | error
    tokens_in   INTEGER NOT NULL,
    tokens_out  INTEGER NOT NULL,
    retries     INTEGER NOT NULL,         -- 429 / 5xx / timeouts retried inside this request
    latency_ms  DOUBLE NOT NULL,
    cost_usd    DOUBLE NOT NULL,          -- estimated from the price table
    error       VARCHAR,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, repo, sha, annotator, seq)
);
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS cached_tokens INTEGER;    -- input served by a prefix cache
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS reasoning_tokens INTEGER; -- output spent reasoning

-- Batch API submissions: a row as soon as the input file is uploaded, the batch id once the
-- server accepted it, so a run killed at any point is resumed without paying twice.
CREATE TABLE IF NOT EXISTS llm_batches (
    batch_key     VARCHAR PRIMARY KEY,
    annotator     VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,          -- the run that submitted it
    input_file_id VARCHAR NOT NULL,
    batch_id      VARCHAR,                   -- null until the server accepted the batch
    status        VARCHAR NOT NULL,          -- uploaded | submitted | collected | failed
    repos         VARCHAR[] NOT NULL,        -- the commits, as parallel lists
    shas          VARCHAR[] NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);

-- SZZ (racemine szz): one row per commit traced back to the commit that introduced its bug.
CREATE TABLE IF NOT EXISTS szz_traces (
    repo          VARCHAR NOT NULL,
    sha           VARCHAR NOT NULL,
    szz_version   INTEGER NOT NULL,      -- miners/szz.py SZZ_VERSION: older ones are traced again
    status        VARCHAR NOT NULL,      -- found | none | failed
    reason        VARCHAR,               -- why none was found, or why tracing failed
    candidates    INTEGER NOT NULL,
    lines_blamed  INTEGER NOT NULL,
    ignored_revs  VARCHAR[] NOT NULL,    -- reformatting commits blame looked through
    run_id        VARCHAR NOT NULL,
    traced_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, sha)
);

-- The commits that may have introduced a fix's bug, ranked; rank 1 is its introduced_by.
CREATE TABLE IF NOT EXISTS szz_candidates (
    repo              VARCHAR NOT NULL,
    sha               VARCHAR NOT NULL,  -- the fix
    candidate         VARCHAR NOT NULL,  -- a commit that last wrote lines the fix changed
    rank              INTEGER NOT NULL,
    confidence        DOUBLE NOT NULL,   -- share of the evidence, scaled by how direct it is
    method            VARCHAR NOT NULL,  -- blame (changed lines) | blame_adjacent (add-only fix)
    lines_blamed      INTEGER NOT NULL,
    lines_in_located  INTEGER NOT NULL,  -- of those, in the function the label located
    author_date       TIMESTAMPTZ,       -- the candidate's
    subject           VARCHAR,
    blamed            STRUCT(path VARCHAR, line INTEGER, evidence VARCHAR, "function" VARCHAR,
                             orig_path VARCHAR, orig_line INTEGER)[] NOT NULL,
    PRIMARY KEY (repo, sha, candidate)
);

-- A traced commit's answer: its top candidate and the bug's age, or why there is none.
CREATE OR REPLACE VIEW bug_origins AS
SELECT t.repo, t.sha, t.status AS szz_status, t.reason AS szz_reason,
       t.candidates AS szz_candidates, k.candidate AS introduced_by,
       k.author_date AS introduced_at, k.confidence AS introduced_confidence,
       round(epoch(c.author_date - k.author_date) / 86400, 1) AS bug_age_days
FROM szz_traces t
JOIN commits c USING (repo, sha)
LEFT JOIN szz_candidates k ON k.repo = t.repo AND k.sha = t.sha AND k.rank = 1;

-- A person's decision on a commit's label (racemine review): accept it, reject it (not a
-- concurrency fix), or correct it. The corrected fields are NULL where the label stands.
CREATE TABLE IF NOT EXISTS reviews (
    repo               VARCHAR NOT NULL,
    sha                VARCHAR NOT NULL,
    decision           VARCHAR NOT NULL,  -- accept | reject | correct
    annotator          VARCHAR,           -- the label the decision was made on
    is_concurrency_bug BOOLEAN,           -- the reviewed answer: true for accept and correct
    bug_type           VARCHAR,
    scope              VARCHAR,
    location_file      VARCHAR,
    location_function  VARCHAR,
    steps              STRUCT(step INTEGER, actor VARCHAR, action VARCHAR, target VARCHAR,
                              file VARCHAR, "function" VARCHAR, line INTEGER, note VARCHAR)[],
    event_sequence     VARCHAR[],         -- the corrected steps, one line each
    note               VARCHAR,
    reviewer           VARCHAR NOT NULL,  -- RACEMINE_REVIEWER, else the login name
    reviewed_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, sha)
);

-- One row per flow run: what was asked, what happened.
CREATE TABLE IF NOT EXISTS runs (
    run_id       VARCHAR PRIMARY KEY,
    kind         VARCHAR NOT NULL,        -- mine | annotate | export | ...
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       VARCHAR NOT NULL,        -- running | completed | partially_failed | failed
    parameters   JSON,                    -- never holds secrets
    counts       JSON,
    errors       VARCHAR[]
);

-- The same fix reached through several branches or forks (same git patch-id --stable of
-- its Elixir/Erlang changes): the earliest commit is canonical, the others point to it.
CREATE OR REPLACE VIEW commit_dedup AS
SELECT repo, sha, patch_id,
       coalesce(first_value(repo) OVER w, repo) AS canonical_repo,
       coalesce(first_value(sha) OVER w, sha) AS canonical_sha,
       patch_id IS NULL OR (first_value(repo) OVER w = repo AND first_value(sha) OVER w = sha)
           AS is_canonical
FROM commits
WINDOW w AS (PARTITION BY patch_id ORDER BY committer_date, repo, sha
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING);

-- One row per step of a label's event sequence, with the checks' and reviewer's outcome.
CREATE OR REPLACE VIEW event_steps AS
SELECT repo, sha, target AS label_target, annotator, s.step, s.actor, s.action,
       s.target, s.file, s."function", s.line, s.note, s.check_ok, s.check_failure,
       s.reviewer_ok, s.reviewer_note
FROM (SELECT repo, sha, target, annotator, unnest(steps) AS s
      FROM annotations WHERE status = 'ok');

-- A commit's label per annotator: its most confident concurrency label when labeled per file.
-- verified: the label passed the trace checks and, when a reviewer looked, it found the
-- label plausible.
CREATE OR REPLACE VIEW commit_labels AS
SELECT repo, sha, annotator, is_concurrency_bug, bug_type, scope, confidence,
       location_file, location_function, explanation, len(coalesce(steps, [])) AS n_steps,
       checks_passed, is_plausible,
       coalesce(checks_passed AND coalesce(is_plausible, true), false) AS verified, created_at
FROM (
    SELECT a.*, row_number() OVER (
        PARTITION BY repo, sha, annotator
        ORDER BY is_concurrency_bug DESC, confidence DESC NULLS LAST, target
    ) AS rank
    FROM annotations a
    WHERE status = 'ok'
)
WHERE rank = 1;

-- Commits with their newest label (any annotator).
CREATE OR REPLACE VIEW fixes AS
SELECT c.repo, c.sha, c.subject, c.author_date, c.matched_terms, c.match_score,
       l.annotator, l.is_concurrency_bug, l.bug_type, l.scope, l.confidence,
       l.location_file, l.location_function, l.checks_passed, l.is_plausible, l.verified,
       d.is_canonical, o.introduced_by, o.introduced_at, o.bug_age_days,
       o.introduced_confidence, o.szz_status, o.szz_reason
FROM commits c
JOIN commit_dedup d USING (repo, sha)
LEFT JOIN bug_origins o USING (repo, sha)
LEFT JOIN (
    SELECT *, row_number() OVER (PARTITION BY repo, sha ORDER BY created_at DESC, annotator)
              AS rank
    FROM commit_labels
) l ON l.repo = c.repo AND l.sha = c.sha AND l.rank = 1;

-- File pairs with the newest label of their commit (or of the file itself).
CREATE OR REPLACE VIEW pairs AS
SELECT f.repo, f.sha, f.path, f.old_path, f.change_type, f.language, f.is_test,
       f.before, f.after, f.diff, f.lines_added, f.lines_removed,
       c.subject, c.message, c.author_date, d.is_canonical, d.canonical_repo, d.canonical_sha,
       a.annotator, a.is_concurrency_bug, a.bug_type, a.scope, a.confidence,
       a.location_file, a.location_function, a.location_start, a.location_end,
       a.event_sequence, a.steps AS event_steps, a.explanation, a.fix_summary,
       a.checks_passed, a.is_plausible,
       coalesce(a.checks_passed AND coalesce(a.is_plausible, true), false) AS verified
FROM file_changes f
JOIN commits c USING (repo, sha)
JOIN commit_dedup d USING (repo, sha)
LEFT JOIN (
    SELECT *, row_number() OVER (PARTITION BY repo, sha, target ORDER BY created_at DESC,
                                 annotator) AS rank
    FROM annotations WHERE status = 'ok'
) a ON a.repo = f.repo AND a.sha = f.sha AND a.rank = 1
    AND (a.target = f.path OR (a.target = '' AND NOT EXISTS (
        SELECT 1 FROM annotations x
        WHERE x.repo = f.repo AND x.sha = f.sha AND x.target = f.path AND x.status = 'ok')))
WHERE f.skipped_reason IS NULL;

INSERT INTO schema_version (version) VALUES (10) ON CONFLICT DO NOTHING;
