-- 0009: the node (daemon) that runs or ran a job's last attempt (`Job::node`), set by
-- the claim. NULL for jobs stored before it existed and for jobs never started. SQLite
-- has one daemon per data directory, so no index asks by node: its `jobs_of_node` and
-- per-node worker counts are answered from `jobs_processes` (few rows, the running ones).
-- Never edit this file once released.

ALTER TABLE jobs ADD COLUMN node TEXT;
