-- mfs_api.call: the router's single statement per request. It runs the operation, turns
-- errors into HTTP replies, and charges the quota, all in one round trip and one transaction:
-- a request refused by the quota leaves no trace of its operation.

create or replace function mfs.dispatch(op text, a jsonb, b jsonb) returns mfs.reply
language plpgsql as $$
begin
    return case op
        when 'ping' then row(200, '"pong"'::jsonb, null::text)::mfs.reply
        when 'usage' then row(200, mfs_api.get_usage(a ->> '_scope'), null::text)::mfs.reply
        when 'flows_list' then mfs_api.flows_list(a, b)
        when 'flow_get' then mfs_api.flow_get(a, b)
        when 'flow_create' then mfs_api.flow_create(a, b)
        when 'runs_list' then mfs_api.runs_list(a, b)
        when 'run_get' then mfs_api.run_get(a, b)
        when 'run_create' then mfs_api.run_create(a, b)
        when 'run_heartbeat' then mfs_api.run_heartbeat(a, b)
        when 'run_tag_mutate' then mfs_api.run_tag_mutate(a, b)
        when 'run_metadata_list' then mfs_api.run_metadata_list(a, b)
        when 'run_artifacts_list' then mfs_api.run_artifacts_list(a, b)
        when 'steps_list' then mfs_api.steps_list(a, b)
        when 'step_get' then mfs_api.step_get(a, b)
        when 'step_create' then mfs_api.step_create(a, b)
        when 'tasks_list' then mfs_api.tasks_list(a, b)
        when 'task_get' then mfs_api.task_get(a, b)
        when 'task_create' then mfs_api.task_create(a, b)
        when 'task_heartbeat' then mfs_api.task_heartbeat(a, b)
        when 'filtered_tasks' then mfs_api.filtered_tasks(a, b)
        when 'metadata_list' then mfs_api.metadata_list(a, b)
        when 'metadata_create' then mfs_api.metadata_create(a, b)
        when 'artifacts_list' then mfs_api.artifacts_list(a, b)
        when 'artifact_get' then mfs_api.artifact_get(a, b)
        when 'artifacts_attempt_list' then mfs_api.artifacts_attempt_list(a, b)
        when 'artifact_attempt_get' then mfs_api.artifact_attempt_get(a, b)
        when 'artifact_create' then mfs_api.artifact_create(a, b)
        else row(404, jsonb_build_object('message', 'unknown operation ' || coalesce(op, 'null')), null::text)::mfs.reply
    end;
end
$$;

-- Errors an operation raised, as HTTP replies; null for errors that are not the request's
-- fault (the caller re-raises those: the router answers 503 for unavailability, else 500).
create or replace function mfs.error_reply(state text, message text, detail text) returns mfs.reply
language sql immutable as $$
    select case
        when state like 'MF4__' then row(substr(state, 3)::int, jsonb_build_object('message', message), null::text)::mfs.reply
        when state = '23505' then row(409, jsonb_build_object('message', 'already exists: ' || coalesce(detail, message)), null::text)::mfs.reply
        when state = '23503' then row(404, jsonb_build_object('message', 'the parent object does not exist: ' || coalesce(detail, message)), null::text)::mfs.reply
        when state in ('23502', '23514') or state like '22%' then
            row(400, jsonb_build_object('message', 'invalid input: ' || message), null::text)::mfs.reply
        when state in ('54000', '54001') then
            row(413, jsonb_build_object('message', 'the request is too large or too deeply nested'), null::text)::mfs.reply
        else null
    end
$$;

create or replace function mfs_api.call(p_scope text, p_op text, p_args jsonb, p_body jsonb)
returns table (status int, body text, next_cursor text)
language plpgsql as $$
declare
    res mfs.reply;
    txt text;
    st text;
    msg text;
    det text;
begin
    begin
        begin
            res := mfs.dispatch(p_op, coalesce(p_args, '{}') || jsonb_build_object('_scope', p_scope), p_body);
        exception when others then
            get stacked diagnostics st = returned_sqlstate, msg = message_text, det = pg_exception_detail;
            res := mfs.error_reply(st, msg, det);
            if res is null then
                raise;
            end if;
            -- the official service lists nothing, rather than 404, under a missing parent
            if res.status = 404 and (p_op like '%\_list' or p_op = 'filtered_tasks') then
                res := row(200, '[]'::jsonb, null::text);
            end if;
        end;
        txt := res.body::text;
        perform mfs.charge(p_scope, octet_length(txt));
    exception when sqlstate 'MF429' then
        get stacked diagnostics msg = message_text, det = pg_exception_detail;
        res := row(429, jsonb_build_object('message', msg) || det::jsonb, null::text);
        txt := res.body::text;
    end;
    if res.status >= 400 or p_op like '%\_list' or p_op like '%\_get' or p_op in ('ping', 'usage', 'filtered_tasks') then
        -- nothing but the quota counter was written: no need to wait for the WAL flush
        perform set_config('synchronous_commit', 'off', true);
    end if;
    return query select res.status, txt, res.next_cursor;
end
$$;
