-- Operations on flows and runs. Each operation is mfs_api.<name>(args, body) -> mfs.reply;
-- args holds the path and query parameters as strings.

create or replace function mfs_api.flows_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare lim int := mfs.page_limit(a); c jsonb := mfs.cursor_decode(a);
begin
    return mfs.page_reply(coalesce((
        select jsonb_agg(jsonb_build_object('j', mfs.flow_json(f), 'k', jsonb_build_array(f.ts_epoch, f.flow_id))
                         order by f.ts_epoch desc, f.flow_id desc)
          from (select * from public.flows_v3 f
                 where c is null or (f.ts_epoch, f.flow_id::text) < ((c ->> 0)::bigint, c ->> 1)
                 order by f.ts_epoch desc, f.flow_id desc
                 limit lim + 1) f), '[]'), lim);
end
$$;

create or replace function mfs_api.flow_get(a jsonb, b jsonb) returns mfs.reply
language sql stable as $$
    select row(200, mfs.flow_json(mfs.find_flow(mfs.arg(a, 'flow_id'))), null::text)::mfs.reply
$$;

create or replace function mfs_api.flow_create(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare
    body jsonb := mfs.require_object(b);
    f public.flows_v3;
begin
    insert into public.flows_v3 (flow_id, user_name, ts_epoch, tags, system_tags)
    values (mfs.arg(a, 'flow_id'), mfs.text_field(body, 'user_name'), mfs.now_ms(),
            mfs.tag_list(body -> 'tags', 'tags'), mfs.tag_list(body -> 'system_tags', 'system_tags'))
    returning * into f;
    return row(200, mfs.flow_json(f), null::text);
end
$$;

create or replace function mfs_api.runs_list(a jsonb, b jsonb) returns mfs.reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
    f public.flows_v3 := mfs.find_flow(mfs.arg(a, 'flow_id'));
begin
    if c is not null and jsonb_typeof(c -> 1) <> 'number' then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    if lim is null then
        -- the whole list, which is what the client asks for: no page keys to build and unwrap
        -- (10,000 runs: 119 ms instead of 207 ms in SQL)
        return row(200, coalesce((select jsonb_agg(mfs.run_json(r) order by r.ts_epoch desc, r.run_number desc)
                                    from public.runs_v3 r where r.flow_id = f.flow_id), '[]'), null::text);
    end if;
    return mfs.page_reply(coalesce((
        select jsonb_agg(jsonb_build_object('j', mfs.run_json(r), 'k', jsonb_build_array(r.ts_epoch, r.run_number))
                         order by r.ts_epoch desc, r.run_number desc)
          from (select * from public.runs_v3 r
                 where r.flow_id = f.flow_id
                   and (c is null or (r.ts_epoch, r.run_number) < ((c ->> 0)::bigint, (c ->> 1)::int))
                 order by r.ts_epoch desc, r.run_number desc
                 limit lim + 1) r), '[]'), lim);
end
$$;

create or replace function mfs_api.run_get(a jsonb, b jsonb) returns mfs.reply
language sql stable as $$
    select row(200, mfs.run_json(mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'))), null::text)::mfs.reply
$$;

-- Clients from Metaflow 2.2.12 on send heartbeats (they tag objects "metaflow_version:X.Y.Z"),
-- so their runs and tasks start with a heartbeat, as in the official service.
create or replace function mfs.heartbeat_capable(system_tags jsonb) returns boolean
language sql immutable as $$
    select coalesce(bool_or(array[coalesce(v[1], '0')::int, coalesce(v[2], '0')::int, coalesce(v[3], '0')::int]
                            >= array[2, 2, 12]), false)
      from jsonb_array_elements_text(coalesce(system_tags, '[]')) tag,
           lateral regexp_match(tag, '^metaflow_version:([0-9]{1,6})(?:\.([0-9]{1,6}))?(?:\.([0-9]{1,6}))?') v
$$;

-- A run gets a service-assigned run_number; a body run_number (a string such as
-- "argo-abc" or a --run-id) is stored as the client-chosen run_id.
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
            mfs.tag_list(body -> 'tags', 'tags'), mfs.tag_list(body -> 'system_tags', 'system_tags'),
            case when mfs.heartbeat_capable(body -> 'system_tags') then mfs.now_s() end)
    returning * into r;
    return row(200, mfs.run_json(r), null::text);
end
$$;

-- The client's heartbeat thread needs HTTP 200 and a JSON-encoded JSON string.
create or replace function mfs.heartbeat_reply() returns mfs.reply
language sql immutable as $$
    select row(200, to_jsonb('{"wait_time_in_seconds": 10}'::text), null::text)::mfs.reply
$$;

create or replace function mfs_api.run_heartbeat(a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
declare r public.runs_v3 := mfs.find_run(mfs.arg(a, 'flow_id'), mfs.arg(a, 'run_number'));
begin
    update public.runs_v3 set last_heartbeat_ts = mfs.now_s()
     where flow_id = r.flow_id and run_number = r.run_number;
    return mfs.heartbeat_reply();
end
$$;

-- Tag mutation: the run row is locked, so concurrent edits apply one after the other and
-- none is lost. System tags cannot be removed (422, which the client does not retry); adding
-- one that is already a system tag is silently skipped, as the official service does.
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
      from jsonb_array_elements_text(to_add) t where not coalesce(r.system_tags, '[]') ? t;
    select array_agg(t order by t) into protected
      from jsonb_array_elements_text(to_remove) t
     where coalesce(r.system_tags, '[]') ? t;
    if protected is not null then
        perform mfs.fail(422, 'system tags cannot be removed: ' || array_to_string(protected, ', '));
    end if;
    -- keep existing order, drop removed tags, append new ones once each
    select coalesce(jsonb_agg(t order by first_pos), '[]') into new_tags
      from (select t, min(pos) first_pos
              from (select t, pos from jsonb_array_elements_text(coalesce(r.tags, '[]')) with ordinality x(t, pos)
                    union all
                    select t, 1000000 + pos from jsonb_array_elements_text(to_add) with ordinality y(t, pos)) all_tags
             where not (to_remove ? t) or t in (select jsonb_array_elements_text(to_add))
             group by t) kept;
    update public.runs_v3 set tags = new_tags
     where flow_id = r.flow_id and run_number = r.run_number;
    return row(200, jsonb_build_object('tags', new_tags), null::text);
end
$$;
