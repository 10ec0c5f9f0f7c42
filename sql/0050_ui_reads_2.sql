-- Second set of reads for the Metaflow UI (`python -m mfs ui`, issue 11): fewer service requests
-- per view and live updates without re-reading every subscribed list.
--   ui_runs_view: the home page's runs list (mfs_api.ui_runs, 0030) and, in the same reply, the
--     start-step metadata of each listed run, which the UI asks for once per row.
--   ui_run_view:  what the run page reads (run, steps, tasks, parameters, start metadata) in one.
--   ui_artifact_names: the artifact names of a run containing a text (the search box).
--   ui_changes:   what changed since a cursor (high-water marks of index-backed columns: new runs
--     by ts_epoch, new tasks by task_id, new metadata rows by id), for the websocket's pushes.

-- The metadata rows of a run's start step, as ui_run_metadata (0030) returns them, oldest first;
-- at most `lim` + 1 rows (one more than lim says the list is longer).
create or replace function mfs.ui_start_metadata(r public.runs_v3, lim int) returns jsonb
language sql stable as $$
    select coalesce(jsonb_agg(mfs.metadata_json(m) || jsonb_build_object(
               'run_number', coalesce(r.run_id, r.run_number::text),
               'attempt_id', mfs.ui_metadata_attempt(m)) order by m.ts_epoch, m.id), '[]')
      from (select m.* from public.metadata_v3 m
             where m.flow_id = r.flow_id and m.run_number = r.run_number and m.step_name = 'start'
             order by m.ts_epoch, m.id limit lim + 1) m
$$;

-- A listed run by its flow and exposed id (run_number, or run_id when not a number), through
-- the primary key or the (flow_id, run_id) index; null when it is gone.
create or replace function mfs.ui_listed_run(p_flow text, p_run text) returns public.runs_v3
language plpgsql stable as $$
declare r public.runs_v3;
begin
    if mfs.is_number(p_run) then
        select * into r from public.runs_v3 where flow_id = p_flow and run_number = p_run::bigint;
    else
        select * into r from public.runs_v3 where flow_id = p_flow and run_id = p_run;
    end if;
    return r;
end
$$;

-- GET /ui/runs/view: the reply of /ui/runs (same parameters) as {"runs": [...], "start_metadata":
-- [[...], ...]} where start_metadata[i] is the start step's metadata of runs[i] (up to 1001 rows:
-- 1001 means the run has more, read them with /ui/.../metadata).
create or replace function mfs_api.ui_runs_view(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    listed mfs.reply := mfs_api.ui_runs(a, b);
    meta jsonb;
begin
    select coalesce(jsonb_agg(mfs.ui_start_metadata(mfs.ui_listed_run(x.j ->> 'flow_id', x.j ->> 'run_number'), 1000)
                              order by x.i), '[]')
      into meta
      from jsonb_array_elements(listed.body) with ordinality x(j, i);
    return row(200, jsonb_build_object('runs', listed.body, 'start_metadata', meta), null::text);
end
$$;

-- GET /ui/flows/{flow_id}/runs/{run_number}/view: the run page's reads in one reply, each as its own
-- /ui read returns it: "run" (ui_run), "steps" (ui_run_steps), "tasks" (ui_run_tasks, _limit
-- 1000), "parameters" (ui_run_artifacts of step _parameters), "first_artifact" (ui_run_artifacts,
-- _limit 1) and "start_metadata" (ui_run_metadata of step start, _limit 1000).
create or replace function mfs_api.ui_run_view(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    run_args jsonb := jsonb_build_object('flow_id', a ->> 'flow_id', 'run_number', a ->> 'run_number');
begin
    return row(200, jsonb_build_object(
        'run', (mfs_api.ui_run(run_args, b)).body,
        'steps', (mfs_api.ui_run_steps(run_args, b)).body,
        'tasks', (mfs_api.ui_run_tasks(run_args || '{"_limit": "1000", "_page": "1"}', b)).body,
        'parameters', (mfs_api.ui_run_artifacts(run_args || '{"step_name": "_parameters"}', b)).body,
        'first_artifact', (mfs_api.ui_run_artifacts(run_args || '{"_limit": "1", "_page": "1"}', b)).body,
        'start_metadata', (mfs_api.ui_run_metadata(
            run_args || '{"step_name": "start", "_limit": "1000", "_page": "1"}', b)).body), null::text);
end
$$;

-- GET /ui/flows/{flow_id}/runs/{run_number}/artifact_names?contains=&_limit=: up to _limit (default
-- 5) distinct artifact names of the run containing `contains` (case-insensitive), ascending.
create or replace function mfs_api.ui_artifact_names(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    pat text := '%' || replace(replace(replace(coalesce(a ->> 'contains', ''), '\', '\\'), '%', '\%'), '_', '\_') || '%';
    lim int := (mfs.ui_page(a, 5)).lim;
begin
    return row(200, (select coalesce(jsonb_agg(v order by v), '[]')
                       from (select distinct x.name as v from public.artifact_v3 x
                              where x.flow_id = r.flow_id and x.run_number = r.run_number
                                and x.name ilike pat
                              order by 1 limit lim) n), null::text);
end
$$;

-- A whole number cursor argument (default 0).
create or replace function mfs.ui_cursor(a jsonb, name text) returns bigint
language plpgsql immutable as $$
begin
    if (a ->> name) is not null and (a ->> name) !~ '^[0-9]{1,18}$' then
        perform mfs.fail(400, format('%s must be a whole number (the cursor of the previous reply)', name));
    end if;
    return coalesce((a ->> name)::bigint, 0);
end
$$;

-- GET /ui/changes?run_ts=&task_id=&metadata_id=: what changed since the cursor of a previous reply.
-- Without a cursor (all three absent) only the current cursor comes back. Otherwise:
--   runs:  [flow_id, run] of runs created after run_ts (runs_v3 ts_epoch index), and of runs with
--          a new task (a task started) or a new metadata row (an attempt began, a task finished:
--          attempt_ok / attempt-done, a run ended) after the task_id / metadata_id cursors
--          (primary keys);
--   tasks: [flow_id, run, step_name, task] of tasks new or with new metadata;
--   cursor: {run_ts, task_id, metadata_id} to pass next time; more: true when a list was cut at
--          1000 rows (ask again at once with the new cursor).
create or replace function mfs_api.ui_changes(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    c_run bigint := mfs.ui_cursor(a, 'run_ts');
    c_task bigint := mfs.ui_cursor(a, 'task_id');
    c_meta bigint := mfs.ui_cursor(a, 'metadata_id');
    body jsonb;
begin
    if (a ->> 'run_ts') is null and (a ->> 'task_id') is null and (a ->> 'metadata_id') is null then
        return row(200, jsonb_build_object(
            'cursor', jsonb_build_object(
                'run_ts', coalesce((select max(ts_epoch) from public.runs_v3), 0),
                'task_id', coalesce((select max(task_id) from public.tasks_v3), 0),
                'metadata_id', coalesce((select max(id) from public.metadata_v3), 0)),
            'runs', '[]'::jsonb, 'tasks', '[]'::jsonb, 'more', false), null::text);
    end if;
    with nr as (select r.flow_id, r.run_number, r.ts_epoch from public.runs_v3 r
                 where r.ts_epoch > c_run order by r.ts_epoch limit 1000),
         nt as (select t.flow_id, t.run_number, t.step_name, t.task_id from public.tasks_v3 t
                 where t.task_id > c_task order by t.task_id limit 1000),
         nm as (select m.id, m.flow_id, m.run_number, m.step_name, m.task_id from public.metadata_v3 m
                 where m.id > c_meta order by m.id limit 1000),
         changed_runs as (select flow_id, run_number from nr union select flow_id, run_number from nt
                          union select flow_id, run_number from nm),
         changed_tasks as (select task_id from nt union select task_id from nm)
    select jsonb_build_object(
        'cursor', jsonb_build_object('run_ts', coalesce((select max(ts_epoch) from nr), c_run),
                                     'task_id', coalesce((select max(task_id) from nt), c_task),
                                     'metadata_id', coalesce((select max(id) from nm), c_meta)),
        'more', (select count(*) from nr) = 1000 or (select count(*) from nt) = 1000
                or (select count(*) from nm) = 1000,
        'runs', (select coalesce(jsonb_agg(jsonb_build_array(r.flow_id, coalesce(r.run_id, r.run_number::text))
                                           order by r.flow_id, r.run_number), '[]')
                   from changed_runs c join public.runs_v3 r
                     on r.flow_id = c.flow_id and r.run_number = c.run_number),
        'tasks', (select coalesce(jsonb_agg(jsonb_build_array(t.flow_id, coalesce(r.run_id, r.run_number::text),
                                                              t.step_name, coalesce(t.task_name, t.task_id::text))
                                            order by t.task_id), '[]')
                    from changed_tasks c join public.tasks_v3 t on t.task_id = c.task_id
                    join public.runs_v3 r on r.flow_id = t.flow_id and r.run_number = t.run_number))
      into body;
    return row(200, body, null::text);
end
$$;

-- The reads join the dispatcher; it keeps answering every other operation as before.
alter function mfs.dispatch(text, jsonb, jsonb) rename to dispatch_before_ui_2;

create or replace function mfs.dispatch(op text, a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
begin
    return case op
        when 'ui_runs_view' then mfs_api.ui_runs_view(a, b)
        when 'ui_run_view' then mfs_api.ui_run_view(a, b)
        when 'ui_artifact_names' then mfs_api.ui_artifact_names(a, b)
        when 'ui_changes' then mfs_api.ui_changes(a, b)
        else mfs.dispatch_before_ui_2(op, a, b)
    end;
end
$$;

revoke execute on all functions in schema mfs, mfs_api from public;
