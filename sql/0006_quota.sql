-- The quota ledger: requests and egress bytes per scope and calendar month (UTC). Limits live
-- in mfs.quota_limits so they change without a redeploy (QuotaGuard writes them); no row, or
-- a null limit, means unlimited. Usage is counted either way.

create table if not exists mfs.quota_limits (
    scope            text primary key,
    max_requests     bigint check (max_requests >= 0),
    max_egress_bytes bigint check (max_egress_bytes >= 0),
    updated_at       timestamptz not null default now()
);

create table if not exists mfs.quota_usage (
    scope        text not null,
    month        date not null,
    requests     bigint not null default 0,
    egress_bytes bigint not null default 0,
    primary key (scope, month)
);

create or replace function mfs.current_month() returns date
language sql stable as $$ select date_trunc('month', mfs.clock() at time zone 'UTC')::date $$;

create or replace function mfs.resets_at(month date) returns text
language sql immutable as $$
    select to_char((month + interval '1 month')::timestamp, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

create or replace function mfs_api.set_quota_limits(p_scope text, p_max_requests bigint, p_max_egress_bytes bigint)
returns jsonb language plpgsql as $$
begin
    if p_scope is null or p_scope = '' then
        raise exception 'a quota scope name is required';
    end if;
    insert into mfs.quota_limits (scope, max_requests, max_egress_bytes)
    values (p_scope, p_max_requests, p_max_egress_bytes)
    on conflict (scope) do update
       set max_requests = excluded.max_requests, max_egress_bytes = excluded.max_egress_bytes,
           updated_at = now();
    return mfs_api.get_usage(p_scope);
end
$$;

create or replace function mfs_api.get_usage(p_scope text) returns jsonb
language sql stable as $$
    select jsonb_build_object(
        'scope', p_scope,
        'month', to_char(mfs.current_month(), 'YYYY-MM'),
        'requests', coalesce(u.requests, 0),
        'egress_bytes', coalesce(u.egress_bytes, 0),
        'max_requests', l.max_requests,
        'max_egress_bytes', l.max_egress_bytes,
        'resets_at', mfs.resets_at(mfs.current_month()))
      from (select 1) one
      left join mfs.quota_usage u on u.scope = p_scope and u.month = mfs.current_month()
      left join mfs.quota_limits l on l.scope = p_scope
$$;

-- Counts one request and its response bytes, or raises MF429 when a budget is exhausted.
-- The row lock taken by the upsert makes admission exact under any concurrency: at a limit
-- of N, exactly N requests are admitted. The lock is held from here until commit, which is
-- why mfs_api.call charges last.
create or replace function mfs.charge(p_scope text, bytes bigint) returns void
language plpgsql as $$
declare
    lim mfs.quota_limits;
    m date := mfs.current_month();
    admitted boolean;
    usage jsonb;
    budget text;
begin
    select * into lim from mfs.quota_limits where scope = p_scope;
    if coalesce(lim.max_requests, 1) > 0 and coalesce(lim.max_egress_bytes, 1) > 0 then
        insert into mfs.quota_usage as u (scope, month, requests, egress_bytes)
        values (p_scope, m, 1, bytes)
        on conflict (scope, month) do update
           set requests = u.requests + 1, egress_bytes = u.egress_bytes + excluded.egress_bytes
         where (lim.max_requests is null or u.requests < lim.max_requests)
           and (lim.max_egress_bytes is null or u.egress_bytes < lim.max_egress_bytes)
        returning true into admitted;
    end if;
    if admitted then
        return;
    end if;
    usage := mfs_api.get_usage(p_scope);
    budget := case when lim.max_requests is not null and (usage ->> 'requests')::bigint >= lim.max_requests
                   then 'requests' else 'egress_bytes' end;
    raise exception using errcode = 'MF429',
        message = format('the monthly %s quota of scope %s is exhausted (%s of %s used); it resets at %s',
                         replace(budget, '_', ' '), p_scope, usage ->> budget, usage ->> ('max_' || budget),
                         usage ->> 'resets_at'),
        detail = (usage || jsonb_build_object('budget', budget))::text;
end
$$;
