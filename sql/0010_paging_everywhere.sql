-- Paging as the newest official service has it (issue 12, items 3 and 4):
-- * _limit above 500 is clamped to 500 (not refused); below 1 or not a number is still a 400;
-- * run metadata, run artifacts and step artifacts are paged too (_limit, _cursor,
--   X-Next-Cursor, newest first); without _limit and _cursor they stay complete lists.

create or replace function mfs.page_limit(a jsonb) returns int
language plpgsql immutable as $$
declare v text := a ->> '_limit';
begin
    if v is null then
        return case when a ? '_cursor' then 50 else null end;
    end if;
    if v !~ '^[0-9]{1,30}$' or v::numeric < 1 then
        perform mfs.fail(400, '_limit must be a whole number of at least 1 (more than 500 counts as 500)');
    end if;
    return least(v::numeric, 500)::int;
end
$$;

-- Run metadata, newest first: the same order and cursor as a task's metadata list.
create or replace function mfs_api.run_metadata_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
begin
    if c is not null and jsonb_typeof(c -> 1) <> 'number' then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    if lim is null then
        return row(200, coalesce((
            select jsonb_agg(mfs.metadata_json(m) order by m.ts_epoch desc, m.id desc)
              from public.metadata_v3 m
             where m.flow_id = r.flow_id and m.run_number = r.run_number), '[]'), null::text);
    end if;
    return mfs.page_reply(coalesce((
        select jsonb_agg(jsonb_build_object('j', mfs.metadata_json(m), 'k', jsonb_build_array(m.ts_epoch, m.id))
                         order by m.ts_epoch desc, m.id desc)
          from (select * from public.metadata_v3 m
                 where m.flow_id = r.flow_id and m.run_number = r.run_number
                   and (c is null or (m.ts_epoch, m.id) < ((c ->> 0)::bigint, (c ->> 1)::bigint))
                 order by m.ts_epoch desc, m.id desc
                 limit lim + 1) m), '[]'), lim);
end
$$;

-- Run- and step-level artifact pages are keyed like the official ones: (ts_epoch, task_id, name).
create or replace function mfs.artifact_cursor(a jsonb) returns jsonb
language plpgsql immutable as $$
declare k jsonb;
begin
    if coalesce(a ->> '_cursor', '') = '' then
        return null;
    end if;
    begin
        k := convert_from(decode(translate(a ->> '_cursor', '-_', '+/'), 'base64'), 'UTF8')::jsonb;
    exception when others then
        k := null;
    end;
    if k is null or jsonb_typeof(k) <> 'array' or jsonb_array_length(k) <> 3
       or jsonb_typeof(k -> 0) <> 'number' or jsonb_typeof(k -> 1) <> 'number'
       or jsonb_typeof(k -> 2) <> 'string' then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    return k;
end
$$;

-- Per task, the artifacts of its highest attempt that stored any (the complete list keeps its
-- order by step, task and name; pages are newest first).
create or replace function mfs_api.run_artifacts_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.artifact_cursor(a);
    r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
    only_step text := case when a ? 'step_name' then mfs.arg(a, 'step_name') end;
begin
    if only_step is not null then
        perform mfs.find_step(r, only_step);
    end if;
    if lim is null then
        return row(200, coalesce((
            select jsonb_agg(mfs.artifact_json(v.x, r.tags, r.system_tags)
                             order by (v.x).step_name, (v.x).task_id, (v.x).name)
              from (select x, max(x.attempt_id) over (partition by x.step_name, x.task_id) latest
                      from public.artifact_v3 x
                     where x.flow_id = r.flow_id and x.run_number = r.run_number
                       and (only_step is null or x.step_name = only_step)) v
             where (v.x).attempt_id = v.latest), '[]'), null::text);
    end if;
    return mfs.page_reply(coalesce((
        select jsonb_agg(jsonb_build_object('j', mfs.artifact_json(p.x, r.tags, r.system_tags),
                                            'k', jsonb_build_array((p.x).ts_epoch, (p.x).task_id, (p.x).name))
                         order by (p.x).ts_epoch desc, (p.x).task_id desc, (p.x).name desc)
          from (select v.x from (select x, max(x.attempt_id) over (partition by x.step_name, x.task_id) latest
                                   from public.artifact_v3 x
                                  where x.flow_id = r.flow_id and x.run_number = r.run_number
                                    and (only_step is null or x.step_name = only_step)) v
                 where (v.x).attempt_id = v.latest
                   and (c is null or ((v.x).ts_epoch, (v.x).task_id, (v.x).name::text)
                                     < ((c ->> 0)::bigint, (c ->> 1)::bigint, c ->> 2))
                 order by (v.x).ts_epoch desc, (v.x).task_id desc, (v.x).name desc
                 limit lim + 1) p), '[]'), lim);
end
$$;
