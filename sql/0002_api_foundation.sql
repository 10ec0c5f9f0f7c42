-- Foundation of the API schema: the clock, id parsing, errors, and the JSON shape of each
-- object. Business logic lives in schema mfs_api (never in public, which Supabase exposes
-- through PostgREST); internal state (quota, migration ledger) in schema mfs.

create schema if not exists mfs;
create schema if not exists mfs_api;

-- The service clock. Tests inject a time with `set mfs.now = '2026-01-31 23:59:59+00'`;
-- production never sets it.
create or replace function mfs.clock() returns timestamptz
language sql stable as $$
    select coalesce(nullif(current_setting('mfs.now', true), '')::timestamptz, now())
$$;

create or replace function mfs.now_ms() returns bigint
language sql stable as $$ select (extract(epoch from mfs.clock()) * 1000)::bigint $$;

create or replace function mfs.now_s() returns bigint
language sql stable as $$ select extract(epoch from mfs.clock())::bigint $$;

-- API errors are raised with SQLSTATE 'MF' || http status (MF400, MF404, MF409, ...);
-- mfs_api.call turns them into responses.
create or replace function mfs.fail(status int, message text) returns void
language plpgsql as $$
begin
    raise exception using errcode = 'MF' || status::text, message = message;
end
$$;

-- A path id is a service-assigned number (digits) or a client-chosen string.
create or replace function mfs.is_number(id text) returns boolean
language sql immutable as $$ select id ~ '^[0-9]{1,18}$' $$;

-- Tags must be a JSON array of strings (or absent).
create or replace function mfs.tag_list(tags jsonb, what text) returns jsonb
language plpgsql immutable as $$
begin
    if tags is null or tags = 'null'::jsonb then
        return '[]'::jsonb;
    end if;
    if jsonb_typeof(tags) <> 'array'
       or exists (select 1 from jsonb_array_elements(tags) t where jsonb_typeof(t) <> 'string') then
        perform mfs.fail(400, what || ' must be a list of strings');
    end if;
    return tags;
end
$$;

-- A body field that must be a string (or absent/null).
create or replace function mfs.text_field(body jsonb, key text) returns text
language plpgsql immutable as $$
declare v jsonb := body -> key;
begin
    if v is null or v = 'null'::jsonb then
        return null;
    end if;
    if jsonb_typeof(v) = 'string' then
        return v #>> '{}';
    end if;
    if jsonb_typeof(v) = 'number' then
        return v::text;
    end if;
    perform mfs.fail(400, key || ' must be a string');
end
$$;

create or replace function mfs.require_object(body jsonb) returns jsonb
language plpgsql immutable as $$
begin
    if body is null or body = 'null'::jsonb then
        return '{}'::jsonb;
    end if;
    if jsonb_typeof(body) <> 'object' then
        perform mfs.fail(400, 'the request body must be a JSON object');
    end if;
    return body;
end
$$;

-- The id a client sees: the client-chosen string when there is one, else the number.
create or replace function mfs.exposed_id(num bigint, name text) returns jsonb
language sql immutable as $$ select coalesce(to_jsonb(name), to_jsonb(num)) $$;

-- JSON shapes, as the official service serializes them.
create or replace function mfs.flow_json(f public.flows_v3) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', f.flow_id, 'user_name', f.user_name,
        'ts_epoch', f.ts_epoch, 'tags', coalesce(f.tags, '[]'), 'system_tags', coalesce(f.system_tags, '[]'))
$$;

create or replace function mfs.run_json(r public.runs_v3) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', r.flow_id,
        'run_number', mfs.exposed_id(r.run_number, r.run_id), 'user_name', r.user_name,
        'ts_epoch', r.ts_epoch, 'last_heartbeat_ts', r.last_heartbeat_ts,
        'tags', coalesce(r.tags, '[]'), 'system_tags', coalesce(r.system_tags, '[]'))
$$;

-- Steps, tasks, metadata and artifacts show the run's current tags (tag mutation changes the
-- run only), which the client's namespace and tag filters rely on.
create or replace function mfs.step_json(s public.steps_v3, run_tags jsonb, run_system_tags jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', s.flow_id,
        'run_number', mfs.exposed_id(s.run_number, s.run_id), 'step_name', s.step_name,
        'user_name', s.user_name, 'ts_epoch', s.ts_epoch,
        'tags', coalesce(run_tags, s.tags, '[]'), 'system_tags', coalesce(run_system_tags, s.system_tags, '[]'))
$$;

create or replace function mfs.task_json(t public.tasks_v3, run_tags jsonb, run_system_tags jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', t.flow_id,
        'run_number', mfs.exposed_id(t.run_number, t.run_id), 'step_name', t.step_name,
        'task_id', mfs.exposed_id(t.task_id, t.task_name), 'user_name', t.user_name,
        'ts_epoch', t.ts_epoch, 'last_heartbeat_ts', t.last_heartbeat_ts,
        'tags', coalesce(run_tags, t.tags, '[]'), 'system_tags', coalesce(run_system_tags, t.system_tags, '[]'))
$$;

-- Metadata keeps its own tags: the client selects attempts by their attempt_id:N tag.
create or replace function mfs.metadata_json(m public.metadata_v3) returns jsonb
language sql stable as $$
    select jsonb_build_object('id', m.id, 'flow_id', m.flow_id,
        'run_number', mfs.exposed_id(m.run_number, m.run_id), 'step_name', m.step_name,
        'task_id', mfs.exposed_id(m.task_id, m.task_name), 'field_name', m.field_name,
        'value', m.value, 'type', m.type, 'user_name', m.user_name, 'ts_epoch', m.ts_epoch,
        'tags', coalesce(m.tags, '[]'), 'system_tags', coalesce(m.system_tags, '[]'))
$$;

create or replace function mfs.artifact_json(a public.artifact_v3, run_tags jsonb, run_system_tags jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', a.flow_id,
        'run_number', mfs.exposed_id(a.run_number, a.run_id), 'step_name', a.step_name,
        'task_id', mfs.exposed_id(a.task_id, a.task_name), 'name', a.name,
        'location', a.location, 'ds_type', a.ds_type, 'sha', a.sha, 'type', a.type,
        'content_type', a.content_type, 'user_name', a.user_name, 'attempt_id', a.attempt_id,
        'ts_epoch', a.ts_epoch,
        'tags', coalesce(run_tags, a.tags, '[]'), 'system_tags', coalesce(run_system_tags, a.system_tags, '[]'))
$$;

-- Finding objects by path ids. A numeric run id is a run_number, anything else a run_id
-- chosen by the client; the same for task_id / task_name.
create or replace function mfs.find_flow(p_flow text) returns public.flows_v3
language plpgsql stable as $$
declare f public.flows_v3;
begin
    select * into f from public.flows_v3 where flow_id = p_flow;
    if not found then
        perform mfs.fail(404, format('flow %s does not exist', p_flow));
    end if;
    return f;
end
$$;

create or replace function mfs.find_run(p_flow text, p_run text) returns public.runs_v3
language plpgsql stable as $$
declare r public.runs_v3;
begin
    if mfs.is_number(p_run) then
        select * into r from public.runs_v3 where flow_id = p_flow and run_number = p_run::bigint;
    else
        select * into r from public.runs_v3 where flow_id = p_flow and run_id = p_run;
    end if;
    if not found then
        perform mfs.fail(404, format('run %s/%s does not exist', p_flow, p_run));
    end if;
    return r;
end
$$;

create or replace function mfs.find_step(r public.runs_v3, p_step text) returns public.steps_v3
language plpgsql stable as $$
declare s public.steps_v3;
begin
    select * into s from public.steps_v3
     where flow_id = r.flow_id and run_number = r.run_number and step_name = p_step;
    if not found then
        perform mfs.fail(404, format('step %s/%s/%s does not exist', r.flow_id,
            coalesce(r.run_id, r.run_number::text), p_step));
    end if;
    return s;
end
$$;

create or replace function mfs.find_task(s public.steps_v3, p_task text) returns public.tasks_v3
language plpgsql stable as $$
declare t public.tasks_v3;
begin
    if mfs.is_number(p_task) then
        select * into t from public.tasks_v3
         where task_id = p_task::bigint
           and flow_id = s.flow_id and run_number = s.run_number and step_name = s.step_name;
    else
        select * into t from public.tasks_v3
         where flow_id = s.flow_id and run_number = s.run_number and step_name = s.step_name
           and task_name = p_task;
    end if;
    if not found then
        perform mfs.fail(404, format('task %s/%s/%s/%s does not exist', s.flow_id,
            coalesce(s.run_id, s.run_number::text), s.step_name, p_task));
    end if;
    return t;
end
$$;

-- Path arguments arrive from the router as strings in a JSON object.
create or replace function mfs.arg(a jsonb, key text) returns text
language plpgsql immutable as $$
declare v text := a ->> key;
begin
    if v is null or v = '' then
        perform mfs.fail(400, key || ' is missing');
    end if;
    -- every id column is varchar(255): a longer id can never name anything
    if length(v) > 255 then
        perform mfs.fail(400, key || ' is longer than 255 characters');
    end if;
    return v;
end
$$;

create or replace function mfs.attempt_arg(a jsonb) returns smallint
language plpgsql immutable as $$
declare v text := a ->> 'attempt_id';
begin
    if v is null or v !~ '^[0-9]{1,4}$' or v::int > 32767 then
        perform mfs.fail(400, 'attempt must be a whole number between 0 and 32767');
    end if;
    return v::smallint;
end
$$;

-- Opt-in cursor pagination: without _limit and _cursor a list is complete (the Metaflow
-- client expects that); with either, pages of _limit (default 50, at most 500), newest first.
create or replace function mfs.page_limit(a jsonb) returns int
language plpgsql immutable as $$
declare v text := a ->> '_limit';
begin
    if v is null then
        return case when a ? '_cursor' then 50 else null end;
    end if;
    if v !~ '^[0-9]{1,6}$' or v::int < 1 or v::int > 500 then
        perform mfs.fail(400, '_limit must be a whole number from 1 to 500');
    end if;
    return v::int;
end
$$;

-- A cursor is the (ts_epoch, key) of the last row of the previous page, as base64 JSON.
create or replace function mfs.cursor_decode(a jsonb) returns jsonb
language plpgsql immutable as $$
declare
    c text := a ->> '_cursor';
    k jsonb;
begin
    if c is null or c = '' then
        return null;
    end if;
    begin
        k := convert_from(decode(translate(c, '-_', '+/'), 'base64'), 'UTF8')::jsonb;
    exception when others then
        k := null;
    end;
    if k is null or jsonb_typeof(k) <> 'array' or jsonb_array_length(k) <> 2
       or jsonb_typeof(k -> 0) <> 'number' or jsonb_typeof(k -> 1) not in ('number', 'string') then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    return k;
end
$$;

create or replace function mfs.cursor_encode(k jsonb) returns text
language sql immutable as $$
    select translate(replace(encode(convert_to(k::text, 'UTF8'), 'base64'), E'\n', ''), '+/', '-_')
$$;

-- The reply of every operation: HTTP status, JSON body, next cursor (X-Next-Cursor).
do $$ begin
    create type mfs.reply as (status int, body jsonb, next_cursor text);
exception when duplicate_object then null;
end $$;

-- Turns up to limit+1 rows {"j": object, "k": [ts, key]} (already in page order) into a reply.
create or replace function mfs.page_reply(rows jsonb, lim int) returns mfs.reply
language sql immutable as $$
    select case
        when lim is null or jsonb_array_length(rows) <= lim then
            row(200, coalesce((select jsonb_agg(e -> 'j' order by n) from jsonb_array_elements(rows) with ordinality x(e, n)), '[]'), null::text)::mfs.reply
        else
            row(200, (select jsonb_agg(e -> 'j' order by n) from jsonb_array_elements(rows) with ordinality x(e, n) where n <= lim),
                mfs.cursor_encode(rows -> (lim - 1) -> 'k'))::mfs.reply
    end
$$;
