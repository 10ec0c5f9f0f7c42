-- Text replies and egress counted as sent (issue 12, the complete runs list at 10,000 runs).
--
-- 1. Operations may answer with a ready JSON text body (mfs.text_reply) instead of jsonb
--    (mfs.reply). mfs.dispatch_text routes the operations that build their text directly and
--    turns every other operation's jsonb reply into text, once, as mfs_api.call did before.
--    The first such operation is the runs list: the complete list (no filter, no paging
--    parameter: what `Flow(...).latest_run` and `for run in Flow(...)` read) was built as one
--    jsonb value per run by per-row function calls, aggregated and then cast to text (120-200 ms
--    for 10,000 runs, 2.4 MB). It is now one string_agg over the runs of the flow, with no
--    per-row jsonb and no per-row SQL function. The bytes are the ones the jsonb cast wrote:
--    the same keys in jsonb's order (by length, then bytewise), the same ", " and ": "
--    separators, strings escaped by the same routine (to_json), the stored tags printed by
--    jsonb's own output. tests/test_text_replies.py compares both byte for byte.
--
-- 2. The router gzips replies of 1 KiB and more for clients that accept it, after this
--    function charged the uncompressed size. It keeps, per process, what it saved since
--    (uncompressed - compressed bytes, with the UTC month of those replies) and sends it with
--    its next request as the argument `_egress_saved` = 'YYYY-MM:bytes'; mfs_api.call charges
--    that request's reply bytes minus the saving. So the month's egress is the bytes actually
--    sent, give or take the last saving not yet sent back (always an over-count). A saving of
--    another month than the database's current one, or a malformed one, is ignored (the
--    month it belongs to keeps its over-count): counts never move between months, and a lost
--    saving only over-counts, which is the safe side for a free-tier guard. A request's net
--    count may be negative (a small reply after a large compressed one); its saving was
--    counted in the same month before, so the month's total never falls below what was sent.

create type mfs.text_reply as (status int, body text, next_cursor text);

-- The complete runs list of a flow, newest first, as the JSON text that
-- jsonb_agg(mfs.run_json(r) order by ...)::text writes (see the top of this file).
create or replace function mfs.runs_complete_text(p_flow_id text) returns text
language sql stable as $$
    select '[' || coalesce(string_agg(
        '{"tags": ' || coalesce(nullif(r.tags, 'null'::jsonb), '[]'::jsonb)::text
        || ', "user": ' || case when r.system_tags ? ('user:' || r.user_name) then u.json else 'null' end
        || f.flow_and_ts || r.ts_epoch::text
        || ', "user_name": ' || coalesce(u.json, 'null')
        || ', "run_number": ' || coalesce(to_json(r.run_id)::text, r.run_number::text)
        || ', "system_tags": ' || coalesce(nullif(r.system_tags, 'null'::jsonb), '[]'::jsonb)::text
        || ', "last_heartbeat_ts": ' || coalesce(r.last_heartbeat_ts::text, 'null')
        || '}',
        ', ' order by r.ts_epoch desc, r.run_number desc), '') || ']'
      -- the flow's id is escaped once for all its runs, a run's user name once for two keys
      from (select ', "flow_id": ' || to_json(p_flow_id)::text || ', "ts_epoch": ' as flow_and_ts) f
     cross join public.runs_v3 r
     cross join lateral (select to_json(r.user_name)::text as json) u
     where r.flow_id = p_flow_id
$$;

-- Runs of a flow (as in 0014), answering text: the complete list directly, a filtered or paged
-- list as its jsonb page cast once. The one definition of the runs list; mfs_api.runs_list
-- below is its jsonb form for callers of the jsonb dispatcher.
create or replace function mfs_api.runs_list_text(a jsonb, b jsonb) returns mfs.text_reply
language plpgsql stable as $$
declare
    lim int := mfs.page_limit(a);
    c jsonb := mfs.cursor_decode(a);
    f public.flows_v3 := mfs.find_flow(mfs.arg(a, 'flow_id'));
    conds text[] := '{}';
    with_status boolean := false;
    status_expr constant text := 'mfs.run_status_rule(e.verdict, e.ok_ts, e.attempt_ts, r.last_heartbeat_ts)';
    p record;
    rows jsonb;
    page mfs.reply;
begin
    if c is not null and jsonb_typeof(c -> 1) <> 'number' then
        perform mfs.fail(400, '_cursor is not a cursor this service issued');
    end if;
    for p in select key, value from jsonb_each_text(a) order by key loop
        case split_part(p.key, ':', 1)
            when 'status' then
                conds := conds || mfs.filter_sql(status_expr, p.key, p.value, 'status');
                with_status := true;
            -- the verified owner, spelled as the official expression index runs_v3_idx_user_ts
            when 'user' then
                conds := conds || mfs.filter_sql(
                    '(case when r.system_tags ? (''user:'' || r.user_name) then r.user_name else null end)',
                    p.key, p.value, 'text');
            when 'user_name' then conds := conds || mfs.filter_sql('r.user_name', p.key, p.value, 'text');
            when 'ts_epoch' then conds := conds || mfs.filter_sql('r.ts_epoch', p.key, p.value, 'epoch');
            when '_tags' then conds := conds || mfs.tags_filter_sql(p.key, p.value);
            else null;
        end case;
    end loop;
    if lim is null and cardinality(conds) = 0 then
        -- the whole list, which is what the client asks for: built as text, nothing to unwrap
        return row(200, mfs.runs_complete_text(f.flow_id), null::text);
    end if;
    lim := coalesce(lim, 50);
    if c is not null then
        conds := conds || format('(r.ts_epoch, r.run_number) < (%s, %s)', (c ->> 0)::bigint, (c ->> 1)::bigint);
    end if;
    execute format(
        'select coalesce(jsonb_agg(jsonb_build_object(''j'', mfs.run_json(x.run)%s,
                                                      ''k'', jsonb_build_array((x.run).ts_epoch, (x.run).run_number))
                                   order by (x.run).ts_epoch desc, (x.run).run_number desc), ''[]'')
           from (select r as run, %s as status
                   from public.runs_v3 r
                   left join mfs.run_end_state e on e.flow_id = r.flow_id and e.run_number = r.run_number
                  where r.flow_id = $1%s
                  order by r.ts_epoch desc, r.run_number desc
                  limit $2) x',
        case when with_status then ' || jsonb_build_object(''status'', x.status)' else '' end,
        case when with_status then status_expr else 'null' end,
        coalesce((select string_agg(' and ' || x, '') from unnest(conds) x), ''))
    into rows using f.flow_id, lim + 1;
    page := mfs.page_reply(rows, lim);
    return row(page.status, page.body::text, page.next_cursor);
end
$$;

create or replace function mfs_api.runs_list(a jsonb, b jsonb) returns mfs.reply
language sql stable as $$
    select row(t.status, t.body::jsonb, t.next_cursor)::mfs.reply from mfs_api.runs_list_text(a, b) t
$$;

-- Every operation's reply as text: the operations that build text answer directly, every
-- other one through the jsonb dispatcher (whatever operations later migrations add there).
create or replace function mfs.dispatch_text(op text, a jsonb, b jsonb) returns mfs.text_reply
language plpgsql as $$
declare
    res mfs.reply;
begin
    if op = 'runs_list' then
        return mfs_api.runs_list_text(a, b);
    end if;
    res := mfs.dispatch(op, a, b);
    return row(res.status, res.body::text, res.next_cursor);
end
$$;

-- The router's saving since its last request ('YYYY-MM:bytes', see the top of this file) as
-- bytes to take off this request's count; 0 when absent, malformed or of another month.
create or replace function mfs.egress_saved(a jsonb) returns bigint
language sql stable as $$
    select case when v ~ '^[0-9]{4}-[0-9]{2}:-?[0-9]{1,15}$'
                     and split_part(v, ':', 1) = to_char(mfs.current_month(), 'YYYY-MM')
                then split_part(v, ':', 2)::bigint else 0 end
      from (select a ->> '_egress_saved' as v) x
$$;

-- As in 0020, with the text replies of mfs.dispatch_text and the router's egress saving taken
-- off the count.
create or replace function mfs_api.call(p_scope text, p_op text, p_args jsonb, p_body jsonb)
returns table (status int, body text, next_cursor text)
language plpgsql as $$
declare
    res mfs.text_reply;
    err mfs.reply;
    txt text;
    st text;
    msg text;
    det text;
    plan text;
    exact boolean := false;
    saved bigint := mfs.egress_saved(p_args);
    args jsonb := (coalesce(p_args, '{}') - '_egress_saved') || jsonb_build_object('_scope', p_scope);
begin
    loop
        begin
            plan := mfs.quota_plan(p_scope, exact);
            begin
                res := mfs.dispatch_text(p_op, args, p_body);
            exception when others then
                get stacked diagnostics st = returned_sqlstate, msg = message_text, det = pg_exception_detail;
                err := mfs.error_reply(st, msg, det);
                if err is null then
                    raise;
                end if;
                res := row(err.status, err.body::text, err.next_cursor);
                -- the official service lists nothing, rather than 404, under a missing parent
                if res.status = 404 and (p_op like '%\_list' or p_op = 'filtered_tasks') then
                    res := row(200, '[]', null::text);
                end if;
            end;
            txt := res.body;
            perform mfs.charge(p_scope, octet_length(txt) - saved, plan);
            exit;
        exception
            when sqlstate 'MF429' then
                get stacked diagnostics msg = message_text, det = pg_exception_detail;
                res := row(429, (jsonb_build_object('message', msg) || det::jsonb)::text, null::text);
                txt := res.body;
                exit;
            when sqlstate 'MFQEX' then
                -- the operation and the count were rolled back with the block: again, exactly
                exact := true;
        end;
    end loop;
    if not mfs.durable_commit(p_op, res.status) then
        perform set_config('synchronous_commit', 'off', true);
    end if;
    return query select res.status, txt, res.next_cursor;
end
$$;
