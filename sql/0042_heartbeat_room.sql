-- Room for heartbeats (issue 16, fewer bytes per task with the official tables and indexes).
-- A run's row is updated on every task heartbeat and a task's on each of its own; neither
-- column is indexed, so PostgreSQL can update in place (a HOT update: no new index entry) when
-- the row's page has room, and it prunes the old versions on that page by itself. Filled to
-- 100 % (the default), a page has no room, and each heartbeat then adds an entry to every one
-- of the table's indexes (nine on runs_v3, four on tasks_v3) until VACUUM. Storage parameters
-- are not part of the schema the official services see (tables, columns, indexes unchanged).
-- metadata_v3 and artifact_v3 are only inserted into: they stay at 100 %. TOAST settings
-- (toast_tuple_target, lz4) were measured to save nothing: their values are too short
-- (BENCHMARKS.md, figure 4).
alter table public.runs_v3 set (fillfactor = 80);
alter table public.tasks_v3 set (fillfactor = 80);
