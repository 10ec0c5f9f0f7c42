-- Read operations for the Metaflow UI (`python -m mfs ui`, issue 11): what one UI view needs in
-- one request, with the official UI backend's derived fields (run status, finished_at and
-- duration; task attempts with status, started_at, finished_at and duration).
-- A run's status is mfs.run_status (0011), the same rule as the runs filter of the metadata API.
-- Replies are plain JSON lists ("has_next" pages: the caller asks for _limit rows and gets up to
-- _limit + 1, the extra row saying there is a next page); the UI's envelope is built by mfs ui.

-- Official UI backend constants: a task heartbeat older than this is stale (WAIT_TIME * 6), and a
-- run or task without heartbeats older than this is failed (OLD_RUN_FAILURE_CUTOFF_TIME).
create or replace function mfs.ui_task_heartbeat_threshold_s() returns bigint
language sql immutable as $$ select 60::bigint $$;
create or replace function mfs.ui_old_failure_cutoff_ms() returns bigint
language sql immutable as $$ select 86400000::bigint $$;

-- _limit and _page of a UI list: _limit 1..1000 (default `dflt`), _page >= 1 (default 1).
create or replace function mfs.ui_page(a jsonb, dflt int, out lim int, out off bigint)
language plpgsql immutable as $$
declare
    l text := a ->> '_limit';
    p text := a ->> '_page';
begin
    if l is not null and (l !~ '^[0-9]{1,6}$' or l::int < 1) then
        perform mfs.fail(400, '_limit must be a whole number of at least 1 (more than 1000 counts as 1000)');
    end if;
    if p is not null and (p !~ '^[0-9]{1,9}$' or p::int < 1) then
        perform mfs.fail(400, '_page must be a whole number of at least 1');
    end if;
    lim := least(coalesce(l::int, dflt), 1000);
    off := (coalesce(p::int, 1) - 1)::bigint * lim;
end
$$;

-- The end step's latest attempt_ok time: when a finished run finished (same row run_status reads).
create or replace function mfs.run_end_ok_ts(r public.runs_v3) returns bigint
language sql stable as $$
    select m.ts_epoch from public.metadata_v3 m
     where m.flow_id = r.flow_id and m.run_number = r.run_number and m.step_name = 'end'
       and m.field_name = 'attempt_ok'
     order by m.ts_epoch desc, m.id desc limit 1
$$;

-- A run as the UI backend lists it: the run object plus status (mfs.run_status), finished_at and
-- duration (ms), run (the exposed id as text) and run_id.
create or replace function mfs.ui_run_json(r public.runs_v3, status text) returns jsonb
language sql stable as $$
    select mfs.run_json(r) || jsonb_build_object(
        'run_number', coalesce(r.run_id, r.run_number::text), 'run_id', r.run_id,
        'run', coalesce(r.run_id, r.run_number::text), 'status', status,
        'finished_at', fin, 'duration',
        case when status = 'running' then coalesce(r.last_heartbeat_ts * 1000, mfs.now_ms()) - r.ts_epoch
             when fin is not null then fin - r.ts_epoch
             when mfs.now_ms() - r.ts_epoch > mfs.ui_old_failure_cutoff_ms() then null
             else mfs.now_ms() - r.ts_epoch end)
      from (select case when status = 'running' then null
                        else coalesce(mfs.run_end_ok_ts(r), r.last_heartbeat_ts * 1000) end as fin) x
$$;

-- One `field:op` filter of the UI runs list, over the derived row `d` (status, user columns).
create or replace function mfs.ui_runs_conditions(a jsonb) returns text
language plpgsql immutable as $$
declare
    conds text[] := '{}';
    p record;
begin
    for p in select key, value from jsonb_each_text(a) order by key loop
        case split_part(p.key, ':', 1)
            when 'flow_id' then conds := conds || mfs.filter_sql('d.flow_id', p.key, p.value, 'text');
            when 'run_number' then conds := conds || mfs.filter_sql('d.run_key', p.key, p.value, 'text');
            when 'status' then conds := conds || mfs.filter_sql('d.status', p.key, p.value, 'status');
            when 'user' then conds := conds || mfs.filter_sql('d.user', p.key, p.value, 'text');
            when 'user_name' then conds := conds || mfs.filter_sql('d.user_name', p.key, p.value, 'text');
            when 'ts_epoch' then conds := conds || mfs.filter_sql('d.ts_epoch', p.key, p.value, 'epoch');
            -- the derived row's all_tags is tags || system_tags (either may be stored as JSON null)
            when '_tags' then conds := conds || replace(mfs.tags_filter_sql(p.key, p.value),
                                                        '(r.tags || r.system_tags)', 'd.all_tags');
            else null;
        end case;
    end loop;
    return coalesce((select string_agg(x, ' and ') from unnest(conds) x), 'true');
end
$$;

-- `_order` of the UI runs list ("-ts_epoch", "+flow_id,-ts_epoch", ...) as SQL; a fixed tiebreak
-- keeps pages stable.
create or replace function mfs.ui_runs_order(v text) returns text
language plpgsql immutable as $$
declare
    part text;
    col text;
    out text[] := '{}';
begin
    foreach part in array string_to_array(coalesce(nullif(v, ''), '-ts_epoch'), ',') loop
        col := ltrim(part, '+- ');
        if col not in ('ts_epoch', 'flow_id', 'user', 'user_name', 'run_number', 'run', 'status',
                       'last_heartbeat_ts') then
            perform mfs.fail(400, format('cannot order runs by %s', col));
        end if;
        if col in ('run_number', 'run') then col := 'run_key'; end if;
        out := out || format('d.%I %s nulls last', col, case when left(part, 1) = '-' then 'desc' else 'asc' end);
    end loop;
    return array_to_string(out || array['d.ts_epoch desc', 'd.flow_id', 'd.run_number desc'], ', ');
end
$$;

-- GET /ui/runs: runs of every flow with status, finished_at, duration; filters flow_id, run_number,
-- status, user, user_name, ts_epoch, _tags; _order; _limit/_page (default 30). With
-- _group=flow_id|user: _limit groups per page (group values ascending), at most _group_limit
-- (default 10) runs each. Up to _limit + 1 rows (groups) come back: one more means a next page.
create or replace function mfs_api.ui_runs(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    pg record := mfs.ui_page(a, 30);
    grp text := a ->> '_group';
    glim int;
    cond text := mfs.ui_runs_conditions(a);
    ord text := mfs.ui_runs_order(a ->> '_order');
    derived text := 'select r as rr, r.flow_id, r.run_number, r.user_name, r.ts_epoch, r.last_heartbeat_ts,
                            mfs.run_user(r) as "user", coalesce(r.run_id, r.run_number::text) as run_key,
                            mfs.run_status(r) as status,
                            mfs.tags_or_empty(r.tags) || mfs.tags_or_empty(r.system_tags) as all_tags
                       from public.runs_v3 r';
    rows jsonb;
begin
    if grp is null then
        execute format(
            'select coalesce(jsonb_agg(mfs.ui_run_json(x.rr, x.status) order by %4$s), ''[]'')
               from (select d.* from (%1$s) d where %2$s order by %3$s limit $1 offset $2) x',
            derived, cond, ord, replace(ord, 'd.', 'x.'))
        into rows using pg.lim + 1, pg.off;
        return row(200, rows, null::text);
    end if;
    if grp not in ('flow_id', 'user') then
        perform mfs.fail(400, format('cannot group runs by %s (use flow_id or user)', grp));
    end if;
    if (a ->> '_group_limit') is not null and (a ->> '_group_limit') !~ '^[0-9]{1,6}$' then
        perform mfs.fail(400, '_group_limit must be a whole number');
    end if;
    glim := least(coalesce((a ->> '_group_limit')::int, 10), 1000);
    execute format(
        'with d as (%1$s), f as (select * from d where %2$s),
              g as (select distinct %3$I as gv from f order by 1 nulls last limit $1 offset $2),
              ranked as (select f.*, row_number() over (partition by f.%3$I order by %4$s) as rn
                           from f where exists (select 1 from g where g.gv is not distinct from f.%3$I))
         select coalesce(jsonb_agg(mfs.ui_run_json(x.rr, x.status) order by x.%3$I nulls last, x.rn), ''[]'')
           from (select ranked.* from ranked where rn <= $3) x',
        derived, cond, grp, replace(ord, 'd.', 'f.'))
    into rows using pg.lim + 1, pg.off, glim;
    -- more than _limit distinct group values in the rows mean a next page
    return row(200, rows, null::text);
end
$$;

-- GET /ui/flows/{flow_id}/runs/{run_number}: one run with status, finished_at, duration.
create or replace function mfs_api.ui_run(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
begin
    return row(200, mfs.ui_run_json(r, mfs.run_status(r)), null::text);
end
$$;

-- Steps of a run with finished_at and duration (official: the latest of the step's _task_ok
-- artifacts, attempt_ok / attempt-done metadata and task heartbeats), oldest first.
create or replace function mfs_api.ui_run_steps(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
begin
    return row(200, coalesce((
        select jsonb_agg(mfs.step_json(s, r.tags, r.system_tags) || jsonb_build_object(
                   'run_number', coalesce(r.run_id, r.run_number::text), 'run_id', r.run_id,
                   'finished_at', fin,
                   'duration', case when fin is not null then fin - s.ts_epoch
                                    when mfs.now_ms() - s.ts_epoch > mfs.ui_old_failure_cutoff_ms() then null
                                    else mfs.now_ms() - s.ts_epoch end)
                 order by s.ts_epoch, s.step_name)
          from public.steps_v3 s
          cross join lateral (select greatest(
                (select max(x.ts_epoch) from public.artifact_v3 x
                  where x.flow_id = s.flow_id and x.run_number = s.run_number and x.step_name = s.step_name
                    and x.name = '_task_ok'),
                (select max(m.ts_epoch) from public.metadata_v3 m
                  where m.flow_id = s.flow_id and m.run_number = s.run_number and m.step_name = s.step_name
                    and m.field_name in ('attempt_ok', 'attempt-done')),
                (select max(t.last_heartbeat_ts) * 1000 from public.tasks_v3 t
                  where t.flow_id = s.flow_id and t.run_number = s.run_number and t.step_name = s.step_name)) as fin) f
         where s.flow_id = r.flow_id and s.run_number = r.run_number), '[]'), null::text);
end
$$;

-- The attempt a metadata row belongs to: its value for attempt / attempt-done, else its
-- "attempt_id:N" tag (as the official UI backend reads it).
create or replace function mfs.ui_metadata_attempt(m public.metadata_v3) returns int
language sql immutable as $$
    select case
        when m.field_name in ('attempt', 'attempt-done') and m.value ~ '^[0-9]{1,4}$' then m.value::int
        else (regexp_match(coalesce(m.tags::text, '') || coalesce(m.system_tags::text, ''), 'attempt_id:([0-9]{1,4})'))[1]::int
    end
$$;

-- GET /ui/flows/{flow_id}/runs/{run_number}/tasks: every attempt of every task of a run (one row
-- per attempt, as the official UI backend lists tasks) with status, started_at, finished_at,
-- duration, attempt_ok and task_ok / task_ok_sha (the _task_ok artifact's location and sha when
-- no attempt_ok was recorded); filters step_name, task_id (comma lists) and attempt_id; oldest first; _limit
-- (default 1000) and _page. The statuses follow the official UI backend's task rule.
create or replace function mfs_api.ui_run_tasks(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    pg record := mfs.ui_page(a, 1000);
    steps text[] := string_to_array(a ->> 'step_name', ',');
    task_keys text[] := string_to_array(a ->> 'task_id', ',');
    want_attempt int;
    rows jsonb;
begin
    if (a ->> 'attempt_id') is not null then
        if (a ->> 'attempt_id') !~ '^[0-9]{1,4}$' then
            perform mfs.fail(400, 'attempt_id must be a whole number');
        end if;
        want_attempt := (a ->> 'attempt_id')::int;
    end if;
    with tk as (
        select t as tt, t.step_name, t.task_id from public.tasks_v3 t
         where t.flow_id = r.flow_id and t.run_number = r.run_number
           and (steps is null or t.step_name = any (steps))
           and (task_keys is null or t.task_id::text = any (task_keys) or t.task_name = any (task_keys))),
    ev as (
        select m.step_name, m.task_id, mfs.ui_metadata_attempt(m) as n, m.field_name as kind,
               m.ts_epoch, m.value, null::text as location, null::text as sha
          from public.metadata_v3 m
         where m.flow_id = r.flow_id and m.run_number = r.run_number
           and m.field_name in ('attempt', 'attempt-done', 'attempt_ok')
           and (steps is null or m.step_name = any (steps))
        union all
        select x.step_name, x.task_id, x.attempt_id, '_task_ok', x.ts_epoch, null, x.location, x.sha
          from public.artifact_v3 x
         where x.flow_id = r.flow_id and x.run_number = r.run_number and x.name = '_task_ok'
           and (steps is null or x.step_name = any (steps))),
    att as (
        select e.step_name, e.task_id, e.n,
               max(e.ts_epoch) filter (where e.kind = 'attempt') as started_at,
               max(e.ts_epoch) filter (where e.kind in ('attempt-done', 'attempt_ok')) as done_at,
               max(e.ts_epoch) filter (where e.kind = '_task_ok') as task_ok_at,
               max(e.location) filter (where e.kind = '_task_ok') as task_ok_location,
               max(e.sha) filter (where e.kind = '_task_ok') as task_ok_sha,
               (array_agg(case when lower(e.value) in ('true', 't', '1') then true
                               when lower(e.value) in ('false', 'f', '0') then false end
                          order by e.ts_epoch desc) filter (where e.kind = 'attempt_ok'))[1] as ok
          from ev e where e.n is not null
         group by e.step_name, e.task_id, e.n),
    joined as (
        select t.tt as t, a2.n, a2.started_at, a2.done_at, a2.task_ok_at, a2.task_ok_location, a2.task_ok_sha, a2.ok,
               lead(a2.started_at) over (partition by t.step_name, t.task_id order by a2.n) as next_start,
               (a2.n is null) as no_attempt
          from tk t left join att a2 on a2.step_name = t.step_name and a2.task_id = t.task_id),
    shaped as (
        select j.*, coalesce(j.n, 0) as attempt_id,
               coalesce(greatest(j.done_at, j.task_ok_at), j.next_start) as fin_raw,
               coalesce(j.done_at, j.task_ok_at) as done_any,
               coalesce(j.started_at, (j.t).ts_epoch) as began,
               (j.t).last_heartbeat_ts as hb
          from joined j),
    rowsj as (
        select s.attempt_id, s.t, s.began, mfs.task_json(s.t, r.tags, r.system_tags) || jsonb_build_object(
                   'run_number', coalesce(r.run_id, r.run_number::text), 'run_id', r.run_id,
                   'task_id', coalesce((s.t).task_name, (s.t).task_id::text), 'task_name', (s.t).task_name,
                   'attempt_id', s.attempt_id, 'started_at', s.started_at,
                   'finished_at', case when s.fin_raw is null and s.hb is not null
                                            and mfs.now_s() - s.hb > mfs.ui_task_heartbeat_threshold_s()
                                       then s.hb * 1000 else s.fin_raw end,
                   'attempt_ok', s.ok,
                   'task_ok', case when s.ok is null then s.task_ok_location end,
                   'task_ok_sha', case when s.ok is null then s.task_ok_sha end,
                   'status', case
                       when s.ok is true then 'completed'
                       when s.ok is false then 'failed'
                       when s.done_any is not null then 'unknown'
                       when s.next_start is not null then 'failed'
                       when s.hb is not null and mfs.now_s() - s.hb > mfs.ui_task_heartbeat_threshold_s() then 'failed'
                       when s.hb is null and mfs.now_ms() - s.began > mfs.ui_old_failure_cutoff_ms() then 'failed'
                       when s.hb is null and s.no_attempt then 'pending'
                       else 'running' end,
                   'duration', case
                       when s.hb is null and mfs.now_ms() - s.began > mfs.ui_old_failure_cutoff_ms() and s.done_any is null then null
                       when s.hb is null and s.no_attempt then null
                       else coalesce(s.fin_raw, s.hb * 1000, mfs.now_ms()) - s.began end) as j
          from shaped s
         where want_attempt is null or s.attempt_id = want_attempt)
    select coalesce(jsonb_agg(x.j order by x.began, (x.t).step_name, (x.t).task_id, x.attempt_id), '[]')
      into rows
      from (select * from rowsj order by began, (t).step_name, (t).task_id, attempt_id
             limit pg.lim + 1 offset pg.off) x;
    return row(200, rows, null::text);
end
$$;

-- GET /ui/flows/{flow_id}/runs/{run_number}/metadata: a run's metadata rows with their attempt_id,
-- filtered by step_name, task_id, attempt_id (a number, or "null" for rows of no attempt) and
-- field_name; oldest first; _limit (default 1000) and _page.
create or replace function mfs_api.ui_run_metadata(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    pg record := mfs.ui_page(a, 1000);
    att text := a ->> 'attempt_id';
    rows jsonb;
begin
    if att is not null and att <> 'null' and att !~ '^[0-9]{1,4}$' then
        perform mfs.fail(400, 'attempt_id must be a whole number or null');
    end if;
    select coalesce(jsonb_agg(mfs.metadata_json(m) || jsonb_build_object(
               'run_number', coalesce(r.run_id, r.run_number::text),
               'attempt_id', mfs.ui_metadata_attempt(m)) order by m.ts_epoch, m.id), '[]')
      into rows
      from (select m.* from public.metadata_v3 m
             where m.flow_id = r.flow_id and m.run_number = r.run_number
               and (a ->> 'step_name' is null or m.step_name = a ->> 'step_name')
               and (a ->> 'task_id' is null or m.task_id::text = a ->> 'task_id' or m.task_name = a ->> 'task_id')
               and (a ->> 'field_name' is null or m.field_name = any (string_to_array(a ->> 'field_name', ',')))
               and case when att is null then true
                        when att = 'null' then mfs.ui_metadata_attempt(m) is null
                        else mfs.ui_metadata_attempt(m) = att::int end
             order by m.ts_epoch, m.id
             limit pg.lim + 1 offset pg.off) m;
    return row(200, rows, null::text);
end
$$;

-- GET /ui/flows/{flow_id}/runs/{run_number}/artifacts: a run's artifact rows, filtered by
-- step_name, task_id, attempt_id and name (comma list); oldest first; _limit (default 1000), _page.
create or replace function mfs_api.ui_run_artifacts(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    pg record := mfs.ui_page(a, 1000);
    rows jsonb;
begin
    if (a ->> 'attempt_id') is not null and (a ->> 'attempt_id') !~ '^[0-9]{1,4}$' then
        perform mfs.fail(400, 'attempt_id must be a whole number');
    end if;
    select coalesce(jsonb_agg(mfs.artifact_json(x, r.tags, r.system_tags) || jsonb_build_object(
               'run_number', coalesce(r.run_id, r.run_number::text)) order by x.ts_epoch, x.step_name, x.task_id, x.name), '[]')
      into rows
      from (select x.* from public.artifact_v3 x
             where x.flow_id = r.flow_id and x.run_number = r.run_number
               and (a ->> 'step_name' is null or x.step_name = a ->> 'step_name')
               and (a ->> 'task_id' is null or x.task_id::text = a ->> 'task_id' or x.task_name = a ->> 'task_id')
               and (a ->> 'attempt_id' is null or x.attempt_id = (a ->> 'attempt_id')::int)
               and (a ->> 'name' is null or x.name = any (string_to_array(a ->> 'name', ',')))
             order by x.ts_epoch, x.step_name, x.task_id, x.name
             limit pg.lim + 1 offset pg.off) x;
    return row(200, rows, null::text);
end
$$;

-- GET /ui/autocomplete/{kind}: up to _limit (default 5) distinct values containing `contains`
-- (case-insensitive): kind flows (flow ids), tags (run tags and system tags), runs (run ids of
-- flow_id), steps (step names of flow_id / run_number).
create or replace function mfs_api.ui_autocomplete(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    kind text := mfs.arg(a, 'kind');
    pat text := '%' || replace(replace(replace(coalesce(a ->> 'contains', ''), '\', '\\'), '%', '\%'), '_', '\_') || '%';
    lim int := (mfs.ui_page(a, 5)).lim;
    r public.runs_v3;
    vals jsonb;
begin
    if kind = 'flows' then
        select coalesce(jsonb_agg(v order by v), '[]') into vals
          from (select f.flow_id as v from public.flows_v3 f where f.flow_id ilike pat order by f.flow_id limit lim) x;
    elsif kind = 'tags' then
        select coalesce(jsonb_agg(v order by v), '[]') into vals
          from (select distinct t as v
                  from public.runs_v3 rr, jsonb_array_elements_text(coalesce(nullif(rr.tags, 'null'), '[]') || coalesce(nullif(rr.system_tags, 'null'), '[]')) t
                 where t ilike pat order by 1 limit lim) x;
    elsif kind = 'runs' then
        select coalesce(jsonb_agg(v), '[]') into vals
          from (select coalesce(rr.run_id, rr.run_number::text) as v from public.runs_v3 rr
                 where rr.flow_id = mfs.arg(a, 'flow_id') and coalesce(rr.run_id, rr.run_number::text) ilike pat
                 order by rr.ts_epoch desc limit lim) x;
    elsif kind = 'steps' then
        r := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
        select coalesce(jsonb_agg(v order by v), '[]') into vals
          from (select s.step_name as v from public.steps_v3 s
                 where s.flow_id = r.flow_id and s.run_number = r.run_number and s.step_name ilike pat
                 order by s.step_name limit lim) x;
    else
        perform mfs.fail(400, format('unknown autocomplete kind %s (use flows, tags, runs or steps)', kind));
    end if;
    return row(200, vals, null::text);
end
$$;

-- The UI reads join the dispatcher. The dispatcher as it stands (with whatever operations earlier
-- migrations added) is kept under another name and answers every other operation, so adding
-- these does not need to know that list.
alter function mfs.dispatch(text, jsonb, jsonb) rename to dispatch_before_ui;

create or replace function mfs.dispatch(op text, a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
begin
    return case op
        when 'ui_runs' then mfs_api.ui_runs(a, b)
        when 'ui_run' then mfs_api.ui_run(a, b)
        when 'ui_run_steps' then mfs_api.ui_run_steps(a, b)
        when 'ui_run_tasks' then mfs_api.ui_run_tasks(a, b)
        when 'ui_run_metadata' then mfs_api.ui_run_metadata(a, b)
        when 'ui_run_artifacts' then mfs_api.ui_run_artifacts(a, b)
        when 'ui_autocomplete' then mfs_api.ui_autocomplete(a, b)
        else mfs.dispatch_before_ui(op, a, b)
    end;
end
$$;

revoke execute on all functions in schema mfs, mfs_api from public;
