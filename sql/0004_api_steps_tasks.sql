-- Operations on steps and tasks (including heartbeats and filtered_tasks).

create or replace function mfs_api.steps_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
begin
    return mfs.page_reply(coalesce((
        select jsonb_agg(jsonb_build_object('j', mfs.step_json(s, r.tags, r.system_tags),
                                            'k', jsonb_build_array(s.ts_epoch, s.step_name))
                         order by s.ts_epoch desc, s.step_name desc)
          from (select * from public.steps_v3 s
                 where s.flow_id = r.flow_id and s.run_number = r.run_number
                   and (c is null or (s.ts_epoch, s.step_name::text) < ((c ->> 0)::bigint, c ->> 1))
                 order by s.ts_epoch desc, s.step_name desc
                 limit lim + 1) s), '[]'), lim);
end
$$;

create or replace function mfs_api.step_get(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
begin
    return row(200, mfs.step_json(mfs.find_step(r, mfs.arg(a, 'step_name')), r.tags, r.system_tags), null::text);
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
    values (r.flow_id, r.run_number, r.run_id, mfs.arg(a, 'step_name'), mfs.text_field(body, 'user_name'),
            mfs.now_ms(), mfs.tag_list(body -> 'tags', 'tags'), mfs.tag_list(body -> 'system_tags', 'system_tags'))
    returning * into s;
    return row(200, mfs.step_json(s, r.tags, r.system_tags), null::text);
end
$$;

create or replace function mfs_api.tasks_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    s public.steps_v3 := mfs.find_step(r, mfs.arg(a, 'step_name'));
begin
    if c is not null and jsonb_typeof(c -> 1) <> 'number' then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    return mfs.page_reply(coalesce((
        select jsonb_agg(jsonb_build_object('j', mfs.task_json(t, r.tags, r.system_tags),
                                            'k', jsonb_build_array(t.ts_epoch, t.task_id))
                         order by t.ts_epoch desc, t.task_id desc)
          from (select * from public.tasks_v3 t
                 where t.flow_id = s.flow_id and t.run_number = s.run_number and t.step_name = s.step_name
                   and (c is null or (t.ts_epoch, t.task_id) < ((c ->> 0)::bigint, (c ->> 1)::bigint))
                 order by t.ts_epoch desc, t.task_id desc
                 limit lim + 1) t), '[]'), lim);
end
$$;

create or replace function mfs_api.task_get(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    t public.tasks_v3 := mfs.find_task(mfs.find_step(r, mfs.arg(a, 'step_name')), mfs.arg(a, 'task_id'));
begin
    return row(200, mfs.task_json(t, r.tags, r.system_tags), null::text);
end
$$;

-- A task gets a service-assigned task_id; a body task_id that is not a number (orchestrators
-- choose ids such as "t-1a2b3c4d") is stored as task_name, unique within the step (409 when
-- it already exists, and the client then reads it).
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
            mfs.now_ms(), mfs.tag_list(body -> 'tags', 'tags'), mfs.tag_list(body -> 'system_tags', 'system_tags'),
            case when mfs.heartbeat_capable(body -> 'system_tags') then mfs.now_s() end)
    returning * into t;
    if t.last_heartbeat_ts is not null then
        perform mfs.beat_run(r);
    end if;
    return row(200, mfs.task_json(t, r.tags, r.system_tags), null::text);
end
$$;

-- A live task keeps its run alive too (run status is derived from the run's heartbeat).
create or replace function mfs.beat_run(r public.runs_v3) returns void
language sql as $$
    update public.runs_v3 set last_heartbeat_ts = mfs.now_s()
     where flow_id = r.flow_id and run_number = r.run_number
       and last_heartbeat_ts is distinct from mfs.now_s()
$$;

create or replace function mfs_api.task_heartbeat(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    t public.tasks_v3 := mfs.find_task(mfs.find_step(r, mfs.arg(a, 'step_name')), mfs.arg(a, 'task_id'));
begin
    update public.tasks_v3 set last_heartbeat_ts = mfs.now_s() where task_id = t.task_id;
    perform mfs.beat_run(r);
    return mfs.heartbeat_reply();
end
$$;

-- Pathspecs "F/R/S/T" of the step's tasks having a metadata row metadata_field_name whose value
-- matches the regular expression pattern (searched, not anchored: the client anchors it).
-- Either filter alone applies to any metadata row of the task; with neither (what the client
-- sends for the pattern ".*"), every task of the step.
create or replace function mfs_api.filtered_tasks(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    s public.steps_v3 := mfs.find_step(r, mfs.arg(a, 'step_name'));
    field text := nullif(a ->> 'metadata_field_name', '');
    pattern text := nullif(a ->> 'pattern', '');
    prefix text := s.flow_id || '/' || coalesce(r.run_id, r.run_number::text) || '/' || s.step_name || '/';
begin
    return row(200, coalesce((
        select jsonb_agg(prefix || coalesce(t.task_name, t.task_id::text) order by t.task_id)
          from public.tasks_v3 t
         where t.flow_id = s.flow_id and t.run_number = s.run_number and t.step_name = s.step_name
           and ((field is null and pattern is null) or exists (
                select 1 from public.metadata_v3 m
                 where m.flow_id = t.flow_id and m.run_number = t.run_number
                   and m.step_name = t.step_name and m.task_id = t.task_id
                   and (field is null or m.field_name = field)
                   and (pattern is null or m.value ~ pattern)))), '[]'), null::text);
end
$$;
