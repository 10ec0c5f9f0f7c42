-- Every run object carries "user", as the official service adds it to each run reply: the
-- verified owner, i.e. user_name when the run has the system tag "user:<user_name>", else null
-- (runs scheduled by orchestrators such as AWS Step Functions have none).

create or replace function mfs.run_user(r public.runs_v3) returns text
language sql immutable as $$
    select case when r.system_tags ? ('user:' || r.user_name) then r.user_name end
$$;

create or replace function mfs.run_json(r public.runs_v3) returns jsonb
language sql stable as $$
    select jsonb_build_object('flow_id', r.flow_id,
        'run_number', mfs.exposed_id(r.run_number, r.run_id), 'user_name', r.user_name,
        'user', mfs.run_user(r),
        'ts_epoch', r.ts_epoch, 'last_heartbeat_ts', r.last_heartbeat_ts,
        'tags', coalesce(r.tags, '[]'), 'system_tags', coalesce(r.system_tags, '[]'))
$$;
