-- The privileges of 0008, as a function the migration runner calls at the end of every
-- migration's transaction (mfs/migrations.py): a function or table that a later migration
-- creates is locked down in the same transaction, not left executable by Supabase's anon,
-- authenticated and service_role (0009-0014 had left 12 functions open).

create or replace function mfs.lock_down() returns void
language plpgsql as $$
declare
    r text;
begin
    revoke all on public.flows_v3, public.runs_v3, public.steps_v3, public.tasks_v3,
                  public.metadata_v3, public.artifact_v3 from public;
    revoke all on sequence public.runs_v3_run_number_seq, public.tasks_v3_task_id_seq,
                           public.metadata_v3_id_seq from public;
    revoke all on schema mfs, mfs_api from public;
    revoke all on all tables in schema mfs from public;
    revoke execute on all functions in schema mfs, mfs_api from public;
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

select mfs.lock_down();
