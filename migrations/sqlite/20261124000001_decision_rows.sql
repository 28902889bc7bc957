-- The decision trail moves to rows of its own: appending is one INSERT on
-- every backend, with no read-modify-write of a JSON column.
CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id  TEXT NOT NULL REFERENCES transactions (id),
    -- JSON: one DecisionRecord.
    record          TEXT NOT NULL
);
CREATE INDEX decisions_transaction ON decisions (transaction_id, id);

INSERT INTO decisions (transaction_id, record)
SELECT t.id, j.value FROM transactions t, json_each(t.decisions) j ORDER BY t.rowid, j.key;

ALTER TABLE transactions DROP COLUMN decisions;
