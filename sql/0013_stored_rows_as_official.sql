-- Stored rows as the official service stores them (issue 12, item 7), so that a database
-- written through the router is indistinguishable from one the official service wrote:
-- * tags / system_tags that a request leaves out (or sends as null) are stored as JSON null,
--   what the official service's json.dumps(None) stores; replies still show [] for them;
-- * a metadata value sent as a JSON list of scalars is stored as the official service's
--   driver (psycopg2) turns a Python list into a Postgres array: ["items=2"] -> {items=2};
-- * every metadata and artifact row of a batch gets its own ts_epoch, increasing in batch
--   order, as the official service's one-insert-per-row does;
-- * a step's run_id is the run number as text when the run has no client-chosen id;
-- * fields the official service defaults when a request leaves them out get its defaults:
--   a step's user_name '', a metadata row's type ' ', an artifact's sha, type, content_type
--   and user_name ' '.

create or replace function mfs.tags_or_empty(tags jsonb) returns jsonb
language sql immutable as $$ select coalesce(nullif(tags, 'null'::jsonb), '[]'::jsonb) $$;

create or replace function mfs.stored_tags(tags jsonb, what text) returns jsonb
language sql immutable as $$
    select case when tags is null or tags = 'null'::jsonb then 'null'::jsonb else mfs.tag_list(tags, what) end
$$;

create or replace function mfs.stored_value(v jsonb) returns text
language sql immutable as $$
    select case
        when jsonb_typeof(v) = 'string' then v #>> '{}'
        -- a flat list of strings and numbers: Postgres array text, quoting as Postgres does
        when jsonb_typeof(v) = 'array'
             and not exists (select 1 from jsonb_array_elements(v) x where jsonb_typeof(x) not in ('string', 'number'))
            then (select coalesce(array_agg(x order by n), '{}') from jsonb_array_elements_text(v) with ordinality y(x, n))::text
        -- anything else (objects, nested lists; the official service cannot store these) as JSON text
        else v::text
    end
$$;

create or replace function mfs.absent_as_blank(obj jsonb, key text) returns text
language sql immutable as $$
    select case when obj ? key then mfs.text_field(obj, key) else ' ' end
$$;

create or replace function mfs.flow_json(f public.flows_v3) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', f.flow_id, 'user_name', f.user_name,
        'ts_epoch', f.ts_epoch, 'tags', mfs.tags_or_empty(f.tags), 'system_tags', mfs.tags_or_empty(f.system_tags))
$$;

create or replace function mfs.run_json(r public.runs_v3) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', r.flow_id,
        'run_number', mfs.exposed_id(r.run_number, r.run_id), 'user_name', r.user_name,
        'user', mfs.run_user(r),
        'ts_epoch', r.ts_epoch, 'last_heartbeat_ts', r.last_heartbeat_ts,
        'tags', mfs.tags_or_empty(r.tags), 'system_tags', mfs.tags_or_empty(r.system_tags))
$$;

create or replace function mfs.step_json(s public.steps_v3, run_tags jsonb, run_system_tags jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', s.flow_id,
        'run_number', to_jsonb(coalesce(s.run_id, s.run_number::text)), 'step_name', s.step_name,
        'user_name', s.user_name, 'ts_epoch', s.ts_epoch,
        'tags', mfs.tags_or_empty(coalesce(nullif(run_tags, 'null'), s.tags)), 'system_tags', mfs.tags_or_empty(coalesce(nullif(run_system_tags, 'null'), s.system_tags)))
$$;

create or replace function mfs.task_json(t public.tasks_v3, run_tags jsonb, run_system_tags jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', t.flow_id,
        'run_number', mfs.exposed_id(t.run_number, t.run_id), 'step_name', t.step_name,
        'task_id', mfs.exposed_id(t.task_id, t.task_name), 'user_name', t.user_name,
        'ts_epoch', t.ts_epoch, 'last_heartbeat_ts', t.last_heartbeat_ts,
        'tags', mfs.tags_or_empty(coalesce(nullif(run_tags, 'null'), t.tags)), 'system_tags', mfs.tags_or_empty(coalesce(nullif(run_system_tags, 'null'), t.system_tags)))
$$;

create or replace function mfs.metadata_json(m public.metadata_v3) returns jsonb
language sql stable as $$
    select jsonb_build_object('id', m.id, 'flow_id', m.flow_id,
        'run_number', mfs.exposed_id(m.run_number, m.run_id), 'step_name', m.step_name,
        'task_id', mfs.exposed_id(m.task_id, m.task_name), 'field_name', m.field_name,
        'value', m.value, 'type', m.type, 'user_name', m.user_name, 'ts_epoch', m.ts_epoch,
        'tags', mfs.tags_or_empty(m.tags), 'system_tags', mfs.tags_or_empty(m.system_tags))
$$;

create or replace function mfs.artifact_json(a public.artifact_v3, run_tags jsonb, run_system_tags jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', a.flow_id,
        'run_number', mfs.exposed_id(a.run_number, a.run_id), 'step_name', a.step_name,
        'task_id', mfs.exposed_id(a.task_id, a.task_name), 'name', a.name,
        'location', a.location, 'ds_type', a.ds_type, 'sha', a.sha, 'type', a.type,
        'content_type', a.content_type, 'user_name', a.user_name, 'attempt_id', a.attempt_id,
        'ts_epoch', a.ts_epoch,
        'tags', mfs.tags_or_empty(coalesce(nullif(run_tags, 'null'), a.tags)), 'system_tags', mfs.tags_or_empty(coalesce(nullif(run_system_tags, 'null'), a.system_tags)))
$$;

create or replace function mfs_api.flow_create(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare
    body jsonb := mfs.require_object(b);
    f public.flows_v3;
begin
    insert into public.flows_v3 (flow_id, user_name, ts_epoch, tags, system_tags)
    values (mfs.arg(a, 'flow_id'), mfs.text_field(body, 'user_name'), mfs.now_ms(),
            mfs.stored_tags(body -> 'tags', 'tags'), mfs.stored_tags(body -> 'system_tags', 'system_tags'))
    returning * into f;
    return row(200, mfs.flow_json(f), null::text);
end
$$;

create or replace function mfs_api.run_create(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare
    body jsonb := mfs.require_object(b);
    f public.flows_v3 := mfs.find_flow(mfs.arg(a, 'flow_id'));
    chosen text := mfs.text_field(body, 'run_number');
    r public.runs_v3;
begin
    if chosen = '' then
        chosen := null;
    end if;
    if chosen is not null and mfs.is_number(chosen) then
        perform mfs.fail(400, 'a client-chosen run_number may not be an integer: omit it to get one assigned');
    end if;
    insert into public.runs_v3 (flow_id, run_id, user_name, ts_epoch, tags, system_tags, last_heartbeat_ts)
    values (f.flow_id, chosen, mfs.text_field(body, 'user_name'), mfs.now_ms(),
            mfs.stored_tags(body -> 'tags', 'tags'), mfs.stored_tags(body -> 'system_tags', 'system_tags'),
            case when mfs.heartbeat_capable(body -> 'system_tags') then mfs.now_s() end)
    returning * into r;
    return row(200, mfs.run_json(r), null::text);
end
$$;

create or replace function mfs_api.run_tag_mutate(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare
    body jsonb := mfs.require_object(b);
    to_add jsonb := mfs.tag_list(body -> 'tags_to_add', 'tags_to_add');
    to_remove jsonb := mfs.tag_list(body -> 'tags_to_remove', 'tags_to_remove');
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    protected text[];
    new_tags jsonb;
begin
    select * into r from public.runs_v3
     where flow_id = r.flow_id and run_number = r.run_number for update;
    select coalesce(jsonb_agg(t), '[]') into to_add
      from jsonb_array_elements_text(to_add) t where not mfs.tags_or_empty(r.system_tags) ? t;
    select array_agg(t order by t) into protected
      from jsonb_array_elements_text(to_remove) t
     where mfs.tags_or_empty(r.system_tags) ? t;
    if protected is not null then
        perform mfs.fail(422, 'system tags cannot be removed: ' || array_to_string(protected, ', '));
    end if;
    -- keep existing order, drop removed tags, append new ones once each
    select coalesce(jsonb_agg(t order by first_pos), '[]') into new_tags
      from (select t, min(pos) first_pos
              from (select t, pos from jsonb_array_elements_text(mfs.tags_or_empty(r.tags)) with ordinality x(t, pos)
                    union all
                    select t, 1000000 + pos from jsonb_array_elements_text(to_add) with ordinality y(t, pos)) all_tags
             where not (to_remove ? t) or t in (select jsonb_array_elements_text(to_add))
             group by t) kept;
    update public.runs_v3 set tags = new_tags
     where flow_id = r.flow_id and run_number = r.run_number;
    return row(200, jsonb_build_object('tags', new_tags), null::text);
end
$$;

create or replace function mfs_api.step_create(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare
    body jsonb := mfs.require_object(b);
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    s public.steps_v3;
begin
    insert into public.steps_v3 (flow_id, run_number, run_id, step_name, user_name, ts_epoch, tags, system_tags)
    values (r.flow_id, r.run_number, coalesce(r.run_id, r.run_number::text), mfs.arg(a, 'step_name'),
            case when body ? 'user_name' then mfs.text_field(body, 'user_name') else '' end,
            mfs.now_ms(), mfs.stored_tags(body -> 'tags', 'tags'), mfs.stored_tags(body -> 'system_tags', 'system_tags'))
    returning * into s;
    return row(200, mfs.step_json(s, r.tags, r.system_tags), null::text);
end
$$;

create or replace function mfs_api.task_create(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare
    body jsonb := mfs.require_object(b);
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    s public.steps_v3 := mfs.find_step(r, mfs.arg(a, 'step_name'));
    chosen text := mfs.text_field(body, 'task_id');
    t public.tasks_v3;
begin
    if chosen = '' then
        chosen := null;
    end if;
    if chosen is not null and mfs.is_number(chosen) then
        perform mfs.fail(400, 'a client-chosen task_id may not be an integer: omit it to get one assigned');
    end if;
    insert into public.tasks_v3 (flow_id, run_number, run_id, step_name, task_name, user_name, ts_epoch,
                                 tags, system_tags, last_heartbeat_ts)
    values (s.flow_id, s.run_number, r.run_id, s.step_name, chosen, mfs.text_field(body, 'user_name'),
            mfs.now_ms(), mfs.stored_tags(body -> 'tags', 'tags'), mfs.stored_tags(body -> 'system_tags', 'system_tags'),
            case when mfs.heartbeat_capable(body -> 'system_tags') then mfs.now_s() end)
    returning * into t;
    if t.last_heartbeat_ts is not null then
        perform mfs.beat_run(r);
    end if;
    return row(200, mfs.task_json(t, r.tags, r.system_tags), null::text);
end
$$;

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
                   mfs.stored_value(e -> 'value'),
                   mfs.cut(case when e ? 'type' then coalesce(mfs.text_field(e, 'type'), mfs.text_field(e, 'field_name'))
                                else ' ' end),
                   mfs.text_field(e, 'user_name'), mfs.now_ms() + n - 1,
                   mfs.stored_tags(e -> 'tags', 'tags'), mfs.stored_tags(e -> 'system_tags', 'system_tags')
              from jsonb_array_elements(rows) with ordinality x(e, n)
             order by n
            returning 1)
    -- the official reply: a count (the client reads nothing back; rows would cost egress)
    select jsonb_build_object('metadata_created', count(*)) into out_body from inserted;
    return row(200, out_body, null::text);
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
                   mfs.absent_as_blank(e, 'sha'), mfs.absent_as_blank(e, 'type'),
                   mfs.absent_as_blank(e, 'content_type'), mfs.absent_as_blank(e, 'user_name'),
                   coalesce(mfs.text_field(e, 'attempt_id'), '0')::smallint,
                   mfs.now_ms() + n - 1, mfs.stored_tags(e -> 'tags', 'tags'), mfs.stored_tags(e -> 'system_tags', 'system_tags')
              from jsonb_array_elements(rows) with ordinality x(e, n)
            -- a retried POST of the same artifact (same task, attempt and name) stores it once
            on conflict do nothing
            returning 1)
    -- the official reply: how many were new (a repeated artifact counts 0)
    select jsonb_build_object('artifacts_created', count(*)) into out_body from inserted;
    return row(200, out_body, null::text);
end
$$;
