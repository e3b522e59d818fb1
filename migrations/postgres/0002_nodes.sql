-- 0002: several daemons (nodes) on one database. Each daemon holds a lease in `nodes`,
-- renewed by the database's clock (`lease_expires_at = now() + lease`); a job records
-- the node that runs or ran its last attempt (`jobs.node`, set by the claim), so that a
-- node whose lease expired has its running attempts ended (`node_lost`) by the others,
-- and a restart recovers only its own node's jobs. Never edit this file once released.

ALTER TABLE jobs ADD COLUMN node TEXT COLLATE "C";

-- `jobs_of_node` and the per-node worker counts: the running jobs of one node.
CREATE INDEX jobs_node_processes ON jobs (node, queue, seq) WHERE state = 'RUNNING' OR reap_pending;

CREATE TABLE nodes (
    id               TEXT COLLATE "C" PRIMARY KEY,
    -- Judged only against the database's now(): daemons' clocks never compare.
    lease_expires_at TIMESTAMPTZ NOT NULL,
    registered_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Bumped by every registration: a daemon that lost its row to a second daemon with the
    -- same id sees another term at its next renewal.
    term             BIGINT NOT NULL DEFAULT 1
);

CREATE INDEX nodes_expiry ON nodes (lease_expires_at);
