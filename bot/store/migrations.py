"""The store's schema, as numbered migrations applied on open (see `Database.open`)."""

# Numbered migrations: MIGRATIONS[n] upgrades schema version n to n + 1. Never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE inbox (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        channel      TEXT    NOT NULL,
        dedupe_key   TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        order_ts     TEXT    NOT NULL,
        user_id      TEXT    NOT NULL,
        text         TEXT    NOT NULL DEFAULT '',
        thread_ts    TEXT,
        files        TEXT,
        mentions_bot INTEGER NOT NULL DEFAULT 0,
        state        TEXT    NOT NULL DEFAULT 'pending',
        attempts     INTEGER NOT NULL DEFAULT 0,
        turn_id      INTEGER,
        received_at  REAL    NOT NULL,
        done_at      REAL,
        UNIQUE (channel, dedupe_key)
    );
    CREATE INDEX inbox_pending ON inbox (channel, order_ts, id) WHERE state = 'pending';
    CREATE TABLE turns (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        channel     TEXT NOT NULL,
        thread_ts   TEXT,
        message_ts  TEXT,
        state       TEXT NOT NULL DEFAULT 'started',
        reply_text  TEXT,
        response_id TEXT,
        started_at  REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX turns_open ON turns (channel, id) WHERE state IN ('started', 'answered');
    CREATE TABLE conversations (
        channel         TEXT NOT NULL,
        backend         TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        created_at      REAL NOT NULL,
        PRIMARY KEY (channel, backend)
    );
    """,
    # 2: what a turn sent and where its reply is, so a crash or a cut stream can be resolved exactly;
    #    the conversation's newest item, to tell an unfinished turn's messages from older ones.
    """
    ALTER TABLE turns ADD COLUMN conversation_id TEXT;
    ALTER TABLE turns ADD COLUMN input_texts TEXT;
    ALTER TABLE turns ADD COLUMN messages TEXT;
    ALTER TABLE conversations ADD COLUMN last_item_id TEXT;
    """,
    # 3: turns that add context without an answer (mention-only channels).
    """
    ALTER TABLE turns ADD COLUMN silent INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: the `chat` backend keeps each channel's conversation here (Chat Completions is stateless).
    """
    CREATE TABLE chat_messages (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT    NOT NULL,
        message         TEXT    NOT NULL,
        chars           INTEGER NOT NULL,
        created_at      REAL    NOT NULL
    );
    CREATE INDEX chat_messages_by_conversation ON chat_messages (conversation_id, id);
    """,
    # 5: indexes for the queries every turn makes, at any size: a turn's items, unfinished turns
    #    (`retry` included), channels with work at start-up.
    """
    CREATE INDEX inbox_turn ON inbox (turn_id);
    CREATE INDEX inbox_open ON inbox (channel) WHERE state IN ('pending', 'answered');
    DROP INDEX turns_open;
    CREATE INDEX turns_open ON turns (channel, id) WHERE state IN ('started', 'retry', 'answered');
    """,
    # 6: indexes for the lookups that had none: a turn's conversation (the journal notes its newest item
    #    there) and the hourly pruning of finished work.
    """
    CREATE INDEX conversations_by_id ON conversations (backend, conversation_id);
    CREATE INDEX inbox_finished ON inbox (done_at) WHERE state IN ('done', 'skipped');
    CREATE INDEX turns_finished ON turns (coalesce(finished_at, started_at))
        WHERE state IN ('delivered', 'skipped', 'failed');
    """,
    # 7: several replicas on one database: who works which channel (leases expire by the database's
    #     clock) and which replicas are alive (to divide Slack's workspace-wide budgets among them).
    """
    CREATE TABLE channel_leases (
        channel    TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        expires_at REAL NOT NULL,
        previous_owner TEXT,
        released_at REAL,  -- when its last owner let it go, and what was left of the channel's
        post_tokens REAL   -- chat.postMessage budget then (Slack's per-channel limit outlives a hand-over)
    );
    CREATE INDEX channel_leases_by_owner ON channel_leases (owner);
    CREATE TABLE replicas (
        id         TEXT PRIMARY KEY,
        seen_at    REAL NOT NULL,
        started_at REAL NOT NULL
    );
    CREATE INDEX replicas_seen ON replicas (seen_at);
    """,
    # 8: budgets and retention. Tokens used per UTC day, per user and per channel (one row each, added to
    #    with INSERT … ON CONFLICT … DO UPDATE); facts about this installation (the safety_identifier's
    #    salt); a message's author's recent messages (the per-minute limit); over-budget messages end
    #    `refused`, a finished state like `done` and `skipped`; the chat history's age (retention).
    """
    CREATE TABLE token_usage (
        day     TEXT    NOT NULL,
        scope   TEXT    NOT NULL,
        subject TEXT    NOT NULL,
        tokens  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, scope, subject)
    );
    CREATE TABLE installation (
        name  TEXT NOT NULL PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE INDEX inbox_by_author ON inbox (user_id, received_at) WHERE kind = 'message';
    DROP INDEX inbox_finished;
    CREATE INDEX inbox_finished ON inbox (done_at) WHERE state IN ('done', 'skipped', 'refused');
    CREATE INDEX chat_messages_by_age ON chat_messages (created_at);
    """,
    # 9: threads. Each
    #    thread the assistant knows: how it started (the note every message in it carries), whether the
    #    assistant answered in it (follow-ups need no mention) and whether its messages are all in the
    #    conversation (else a mention reads the earlier ones from Slack once).
    """
    CREATE TABLE threads (
        channel     TEXT NOT NULL,
        thread_ts   TEXT NOT NULL,
        root_user   TEXT,
        root_name   TEXT,
        root_text   TEXT,
        answered_at REAL,
        complete_at REAL,
        touched_at  REAL NOT NULL,
        PRIMARY KEY (channel, thread_ts)
    );
    CREATE INDEX threads_touched ON threads (touched_at);
    """,
    # 10: whom the access rules turned away, told once per channel (BRIDGE_ALLOWED_USERS / BLOCKED_USERS);
    #    which person each name the model reads stands for, so two never share one (across restarts too).
    """
    CREATE TABLE access_notes (
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        told_at REAL NOT NULL,
        PRIMARY KEY (channel, user_id)
    );
    CREATE TABLE speaker_names (
        name_key   TEXT NOT NULL PRIMARY KEY,
        user_id    TEXT NOT NULL,
        claimed_at REAL NOT NULL
    );
    """,
    # 11: what the bridge learned about a model server: a model that refuses images (BRIDGE_VISION=auto).
    """
    CREATE TABLE model_facts (
        fact_key   TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        learned_at REAL NOT NULL
    );
    """,
    # 12: reply messages a final text posted anew replaced, still to delete from Slack.
    """
    CREATE TABLE stale_messages (
        channel  TEXT NOT NULL,
        ts       TEXT NOT NULL,
        added_at REAL NOT NULL,
        PRIMARY KEY (channel, ts)
    );
    """,
    # 13: conversations made ahead, empty, for channels still to come (conversation/spares.py): a spare
    #    has no channel; one taken keeps its channel here until the service has it too (its metadata).
    """
    CREATE TABLE spare_conversations (
        conversation_id TEXT PRIMARY KEY,
        pool            TEXT NOT NULL,
        created_at      REAL NOT NULL,
        channel         TEXT
    );
    CREATE INDEX spare_conversations_oldest ON spare_conversations (pool, created_at) WHERE channel IS NULL;
    CREATE INDEX spare_conversations_taken ON spare_conversations (pool) WHERE channel IS NOT NULL;
    """,
    # 14: fewer indexes to keep up to date for each message stored: the open items' two become one
    #     (channel, state, order_ts, id) — the queries for pending items also name the open states, so
    #     SQLite takes it — and a message is indexed by its turn only once it has one.
    """
    DROP INDEX inbox_pending;
    DROP INDEX inbox_open;
    CREATE INDEX inbox_open ON inbox (channel, state, order_ts, id) WHERE state IN ('pending', 'answered');
    DROP INDEX inbox_turn;
    CREATE INDEX inbox_turn ON inbox (turn_id) WHERE turn_id IS NOT NULL;
    """,
)
