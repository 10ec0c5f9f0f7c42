-- Locked-down privileges. On Supabase every table in public is reachable through PostgREST
-- with the public anon key, and default privileges grant new tables to anon, authenticated
-- and service_role. Only the role that owns the schema (the router's) may touch the data.

revoke all on public.flows_v3, public.runs_v3, public.steps_v3, public.tasks_v3,
              public.metadata_v3, public.artifact_v3 from public;
revoke all on sequence public.runs_v3_run_number_seq, public.tasks_v3_task_id_seq,
                       public.metadata_v3_id_seq from public;
revoke all on schema mfs, mfs_api from public;
revoke all on all tables in schema mfs from public;
revoke execute on all functions in schema mfs, mfs_api from public;
alter default privileges in schema mfs, mfs_api revoke execute on functions from public;

do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated', 'service_role'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on public.flows_v3, public.runs_v3, public.steps_v3, public.tasks_v3, '
                           'public.metadata_v3, public.artifact_v3 from %I', r);
            execute format('revoke all on sequence public.runs_v3_run_number_seq, public.tasks_v3_task_id_seq, '
                           'public.metadata_v3_id_seq from %I', r);
            execute format('revoke all on schema mfs, mfs_api from %I', r);
            execute format('revoke all on all tables in schema mfs from %I', r);
            execute format('revoke execute on all functions in schema mfs, mfs_api from %I', r);
        end if;
    end loop;
end
$$;

-- Row level security with no policy: even a role granted access by mistake sees no rows.
-- The owner (the router's role) is not subject to it.
alter table public.flows_v3 enable row level security;
alter table public.runs_v3 enable row level security;
alter table public.steps_v3 enable row level security;
alter table public.tasks_v3 enable row level security;
alter table public.metadata_v3 enable row level security;
alter table public.artifact_v3 enable row level security;
