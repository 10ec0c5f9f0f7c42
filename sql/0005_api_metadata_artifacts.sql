-- Metadata and artifact batches, and their reads (latest attempt and per attempt).

-- Resolves the task of the path once: every batch row belongs to it.
create or replace function mfs.path_task(a jsonb, out r public.runs_v3, out t public.tasks_v3)
language plpgsql stable as $$
begin
    r := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    t := mfs.find_task(mfs.find_step(r, mfs.arg(a, 'step_name')), mfs.arg(a, 'task_id'));
end
$$;

-- For batch POSTs the official service answers 400 with exactly this message when any part of
-- the path is missing (its API tests assert it), where other routes answer 404.
create or replace function mfs.batch_task(a jsonb, out r public.runs_v3, out t public.tasks_v3)
language plpgsql stable as $$
declare p record;
begin
    p := mfs.path_task(a);
    r := p.r;
    t := p.t;
exception when sqlstate 'MF404' then
    perform mfs.fail(400, 'need to register run_id and task_id first');
end
$$;

create or replace function mfs.require_rows(b jsonb) returns jsonb
language plpgsql immutable as $$
begin
    if b is null or jsonb_typeof(b) <> 'array' then
        perform mfs.fail(400, 'the request body must be a JSON list of objects');
    end if;
    if exists (select 1 from jsonb_array_elements(b) e where jsonb_typeof(e) <> 'object') then
        perform mfs.fail(400, 'every element of the list must be a JSON object');
    end if;
    return b;
end
$$;

-- The client's own comment: field and type "could get long"; the columns are varchar(255),
-- so long names are cut rather than failing the user's run.
create or replace function mfs.cut(v text) returns text
language sql immutable as $$ select left(v, 255) $$;

create or replace function mfs_api.metadata_create(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare
    rows jsonb := mfs.require_rows(b);
    p record;
    bad int;
    out_body jsonb;
begin
    select min(n) into bad from jsonb_array_elements(rows) with ordinality x(e, n)
     where mfs.text_field(e, 'field_name') is null or coalesce(e -> 'value', 'null'::jsonb) = 'null'::jsonb;
    if bad is not null then
        perform mfs.fail(400, format('metadata row %s needs a field_name and a value', bad));
    end if;
    p := mfs.batch_task(a);
    with inserted as (
            insert into public.metadata_v3 (flow_id, run_number, run_id, step_name, task_id, task_name,
                                            field_name, value, type, user_name, ts_epoch, tags, system_tags)
            select (p.t).flow_id, (p.t).run_number, (p.r).run_id, (p.t).step_name, (p.t).task_id, (p.t).task_name,
                   mfs.cut(mfs.text_field(e, 'field_name')),
                   -- a value is usually a string; foreach-stack arrives as JSON, kept as its text
                   case when jsonb_typeof(e -> 'value') = 'string' then e ->> 'value' else (e -> 'value')::text end,
                   mfs.cut(coalesce(mfs.text_field(e, 'type'), mfs.text_field(e, 'field_name'))),
                   mfs.text_field(e, 'user_name'), mfs.now_ms(),
                   mfs.tag_list(e -> 'tags', 'tags'), mfs.tag_list(e -> 'system_tags', 'system_tags')
              from jsonb_array_elements(rows) with ordinality x(e, n)
             order by n
            returning 1)
    -- the official reply: a count (the client reads nothing back; rows would cost egress)
    select jsonb_build_object('metadata_created', count(*)) into out_body from inserted;
    return row(200, out_body, null::text);
end
$$;

create or replace function mfs_api.metadata_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
    p record := mfs.path_task(a);
begin
    if c is not null and jsonb_typeof(c -> 1) <> 'number' then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    return mfs.page_reply(coalesce((
        select jsonb_agg(jsonb_build_object('j', mfs.metadata_json(m), 'k', jsonb_build_array(m.ts_epoch, m.id))
                         order by m.ts_epoch desc, m.id desc)
          from (select * from public.metadata_v3 m
                 where m.flow_id = (p.t).flow_id and m.run_number = (p.t).run_number
                   and m.step_name = (p.t).step_name and m.task_id = (p.t).task_id
                   and (c is null or (m.ts_epoch, m.id) < ((c ->> 0)::bigint, (c ->> 1)::bigint))
                 order by m.ts_epoch desc, m.id desc
                 limit lim + 1) m), '[]'), lim);
end
$$;

create or replace function mfs_api.run_metadata_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
begin
    return row(200, coalesce((
        select jsonb_agg(mfs.metadata_json(m) order by m.ts_epoch desc, m.id desc)
          from public.metadata_v3 m
         where m.flow_id = r.flow_id and m.run_number = r.run_number), '[]'), null::text);
end
$$;

create or replace function mfs_api.artifact_create(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare
    rows jsonb := mfs.require_rows(b);
    p record;
    bad int;
    out_body jsonb;
begin
    select min(n) into bad from jsonb_array_elements(rows) with ordinality x(e, n)
     where mfs.text_field(e, 'name') is null or mfs.text_field(e, 'location') is null
        or mfs.text_field(e, 'ds_type') is null
        or (e ? 'attempt_id' and e -> 'attempt_id' <> 'null'::jsonb
            and coalesce(mfs.text_field(e, 'attempt_id'), '') !~ '^[0-9]{1,4}$');
    if bad is not null then
        perform mfs.fail(400, format('artifact row %s needs name, location, ds_type and a whole-number attempt_id', bad));
    end if;
    p := mfs.batch_task(a);
    with inserted as (
            insert into public.artifact_v3 (flow_id, run_number, run_id, step_name, task_id, task_name, name,
                                            location, ds_type, sha, type, content_type, user_name, attempt_id,
                                            ts_epoch, tags, system_tags)
            select (p.t).flow_id, (p.t).run_number, (p.r).run_id, (p.t).step_name, (p.t).task_id, (p.t).task_name,
                   mfs.text_field(e, 'name'), mfs.text_field(e, 'location'), mfs.text_field(e, 'ds_type'),
                   mfs.text_field(e, 'sha'), mfs.text_field(e, 'type'), mfs.text_field(e, 'content_type'),
                   mfs.text_field(e, 'user_name'), coalesce(mfs.text_field(e, 'attempt_id'), '0')::smallint,
                   mfs.now_ms(), mfs.tag_list(e -> 'tags', 'tags'), mfs.tag_list(e -> 'system_tags', 'system_tags')
              from jsonb_array_elements(rows) e
            -- a retried POST of the same artifact (same task, attempt and name) stores it once
            on conflict do nothing
            returning 1)
    -- the official reply: how many were new (a repeated artifact counts 0)
    select jsonb_build_object('artifacts_created', count(*)) into out_body from inserted;
    return row(200, out_body, null::text);
end
$$;

-- The latest attempt of a task: the highest attempt that registered artifacts or an
-- "attempt" metadata row, so an attempt that started but has not stored artifacts yet does
-- not show the previous attempt's (stale) artifacts.
create or replace function mfs.latest_attempt(t public.tasks_v3) returns smallint
language sql stable as $$
    select greatest(
        (select max(attempt_id) from public.artifact_v3 x
          where x.flow_id = t.flow_id and x.run_number = t.run_number and x.step_name = t.step_name
            and x.task_id = t.task_id),
        (select max(m.value::int) from public.metadata_v3 m
          where m.flow_id = t.flow_id and m.run_number = t.run_number and m.step_name = t.step_name
            and m.task_id = t.task_id and m.field_name = 'attempt' and m.value ~ '^[0-9]{1,4}$'))::smallint
$$;

-- Artifacts of one attempt of a task, optionally of one name; paged by name.
create or replace function mfs.task_artifacts(a jsonb, attempt smallint, only_name text, r public.runs_v3, t public.tasks_v3) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
begin
    return mfs.page_reply(coalesce((
        select jsonb_agg(jsonb_build_object('j', mfs.artifact_json(x, r.tags, r.system_tags),
                                            'k', jsonb_build_array(x.ts_epoch, x.name))
                         order by x.ts_epoch desc, x.name desc)
          from (select * from public.artifact_v3 x
                 where x.flow_id = t.flow_id and x.run_number = t.run_number
                   and x.step_name = t.step_name and x.task_id = t.task_id
                   and x.attempt_id = attempt
                   and (only_name is null or x.name = only_name)
                   and (c is null or (x.ts_epoch, x.name::text) < ((c ->> 0)::bigint, c ->> 1))
                 order by x.ts_epoch desc, x.name desc
                 limit lim + 1) x), '[]'), lim);
end
$$;

create or replace function mfs.single(reply mfs.reply, what text) returns mfs.reply
language plpgsql immutable as $$
begin
    if jsonb_array_length(reply.body) = 0 then
        perform mfs.fail(404, what || ' does not exist');
    end if;
    return row(200, reply.body -> 0, null::text);
end
$$;

create or replace function mfs_api.artifacts_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare p record := mfs.path_task(a);
begin
    return mfs.task_artifacts(a, coalesce(mfs.latest_attempt(p.t), 0::smallint), null, p.r, p.t);
end
$$;

create or replace function mfs_api.artifact_get(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare p record := mfs.path_task(a);
begin
    return mfs.single(mfs.task_artifacts('{}', coalesce(mfs.latest_attempt(p.t), 0::smallint),
                                         mfs.arg(a, 'name'), p.r, p.t), 'artifact ' || (a ->> 'name'));
end
$$;

create or replace function mfs_api.artifacts_attempt_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    attempt smallint := mfs.attempt_arg(a);  -- bad input (400) before lookups (404)
    p record := mfs.path_task(a);
begin
    return mfs.task_artifacts(a, attempt, null, p.r, p.t);
end
$$;

create or replace function mfs_api.artifact_attempt_get(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    attempt smallint := mfs.attempt_arg(a);
    p record := mfs.path_task(a);
begin
    return mfs.single(mfs.task_artifacts('{}', attempt, mfs.arg(a, 'name'), p.r, p.t),
                      format('artifact %s of attempt %s', a ->> 'name', a ->> 'attempt_id'));
end
$$;

-- Run- and step-level artifact lists: per task, the artifacts of its highest attempt that
-- stored any (the official service's rule for these lists).
create or replace function mfs_api.run_artifacts_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    only_step text := case when a ? 'step_name' then mfs.arg(a, 'step_name') end;
begin
    if only_step is not null then
        perform mfs.find_step(r, only_step);
    end if;
    return row(200, coalesce((
        select jsonb_agg(mfs.artifact_json(v.x, r.tags, r.system_tags)
                         order by (v.x).step_name, (v.x).task_id, (v.x).name)
          from (select x, max(x.attempt_id) over (partition by x.step_name, x.task_id) latest
                  from public.artifact_v3 x
                 where x.flow_id = r.flow_id and x.run_number = r.run_number
                   and (only_step is null or x.step_name = only_step)) v
         where (v.x).attempt_id = v.latest), '[]'), null::text);
end
$$;
