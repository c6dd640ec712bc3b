CREATE TABLE notes (
    id         bigserial PRIMARY KEY,
    text       text NOT NULL CHECK (char_length(text) BETWEEN 1 AND 1000),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- GET /notes reads the newest first.
CREATE INDEX notes_created_at_idx ON notes (created_at DESC, id DESC);
