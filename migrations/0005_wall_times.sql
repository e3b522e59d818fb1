-- 0005: absolute times that follow a stepped wall clock.
-- * deadline_wall_ms, at_wall_ms: `deadline` and `schedule.at` as the client gave them
--   (wall-clock epoch ms). deadline_ms and due_at_ms stay on the engine's timeline.
-- * wall_offset_ms: the wall clock's offset those were placed with; NULL once nothing of
--   the job follows the wall clock. After a step, the engine moves the jobs whose offset
--   differs (jobs_wall_timed), a round at a time.
-- Jobs stored before this migration keep the times they were placed at (all NULL here).
-- Never edit this file once released.

ALTER TABLE jobs ADD COLUMN deadline_wall_ms INTEGER CHECK (deadline_wall_ms IS NULL OR deadline_wall_ms >= 0);
ALTER TABLE jobs ADD COLUMN at_wall_ms INTEGER CHECK (at_wall_ms IS NULL OR at_wall_ms >= 0);
ALTER TABLE jobs ADD COLUMN wall_offset_ms INTEGER;

CREATE INDEX jobs_wall_timed ON jobs (seq) WHERE wall_offset_ms IS NOT NULL;
