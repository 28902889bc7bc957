-- Lookups that run on every claim or every watcher round read a few index
-- entries, whatever the backlog or the history.

-- A claim looks up expired leases on their own index instead of sorting
-- every ready entry.
CREATE INDEX outbox_leases ON outbox (state, lease_until, id);

-- A relayer's in-flight count reads its in-flight rows, not its history.
CREATE INDEX transactions_status_relayer ON transactions (status, relayer_id);
DROP INDEX transactions_status;
