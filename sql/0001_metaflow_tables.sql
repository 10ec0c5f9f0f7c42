-- The six Metaflow tables, exactly as metaflow-service 2.5.1 leaves them after all of its own
-- migrations (columns, types, nullability, keys and indexes), so that a database is shareable
-- with the official service and its UI backend. ts_epoch is in milliseconds,
-- last_heartbeat_ts in seconds. "if not exists" lets a user bring an existing Metaflow database.

create table if not exists public.flows_v3 (
    flow_id     varchar(255) primary key,
    user_name   varchar(255),
    ts_epoch    bigint not null,
    tags        jsonb,
    system_tags jsonb
);
create index if not exists flows_v3_idx_ts_epoch_flow_id on public.flows_v3 (ts_epoch desc, flow_id desc);

create table if not exists public.runs_v3 (
    flow_id           varchar(255) not null references public.flows_v3 (flow_id),
    run_number        serial not null,
    run_id            varchar(255),
    user_name         varchar(255),
    ts_epoch          bigint not null,
    last_heartbeat_ts bigint,
    tags              jsonb,
    system_tags       jsonb,
    primary key (flow_id, run_number),
    unique (flow_id, run_id)
);
create index if not exists runs_v3_idx_ts_epoch_desc on public.runs_v3 (ts_epoch desc);
create index if not exists runs_v3_idx_ts_epoch on public.runs_v3 (ts_epoch);
create index if not exists runs_v3_idx_flow_ts on public.runs_v3 (flow_id, ts_epoch desc);
create index if not exists runs_v3_idx_flow_ts_run on public.runs_v3 (flow_id, ts_epoch desc, run_number desc);
create index if not exists runs_v3_idx_flow_run_id on public.runs_v3 (flow_id, run_id);
create index if not exists runs_v3_idx_gin_tags_combined on public.runs_v3 using gin ((tags || system_tags));
create index if not exists runs_v3_idx_user_ts on public.runs_v3 (
    (case when system_tags ? ('user:' || user_name) then user_name else null end), ts_epoch desc);

create table if not exists public.steps_v3 (
    flow_id     varchar(255) not null,
    run_number  bigint not null,
    run_id      varchar(255),
    step_name   varchar(255) not null,
    user_name   varchar(255),
    ts_epoch    bigint not null,
    tags        jsonb,
    system_tags jsonb,
    primary key (flow_id, run_number, step_name),
    foreign key (flow_id, run_number) references public.runs_v3 (flow_id, run_number),
    unique (flow_id, run_id, step_name)
);
create index if not exists steps_v3_idx_flow_run_id_step on public.steps_v3 (flow_id, run_id, step_name);

create table if not exists public.tasks_v3 (
    flow_id           varchar(255) not null,
    run_number        bigint not null,
    run_id            varchar(255),
    step_name         varchar(255) not null,
    task_id           bigserial primary key,
    task_name         varchar(255),
    user_name         varchar(255),
    ts_epoch          bigint not null,
    last_heartbeat_ts bigint,
    tags              jsonb,
    system_tags       jsonb,
    foreign key (flow_id, run_number, step_name) references public.steps_v3 (flow_id, run_number, step_name),
    unique (flow_id, run_number, step_name, task_name)
);
create index if not exists tasks_v3_idx_flow_run_id_step_task_name on public.tasks_v3 (flow_id, run_id, step_name, task_name);
create index if not exists tasks_v3_idx_flow_run_step_ts_task on public.tasks_v3 (flow_id, run_number, step_name, ts_epoch desc, task_id desc);

create table if not exists public.metadata_v3 (
    id          bigserial,
    flow_id     varchar(255) not null,
    run_number  bigint not null,
    run_id      varchar(255),
    step_name   varchar(255) not null,
    task_id     bigint not null,
    task_name   varchar(255),
    field_name  varchar(255) not null,
    value       text not null,
    type        varchar(255) not null,
    user_name   varchar(255),
    ts_epoch    bigint not null,
    tags        jsonb,
    system_tags jsonb,
    primary key (id, flow_id, run_number, step_name, task_id, field_name)
);
create index if not exists metadata_v3_idx_flow_run_step_task_field on public.metadata_v3 (flow_id, run_number, step_name, task_id, field_name);
create index if not exists metadata_v3_idx_flow_run_ts_id on public.metadata_v3 (flow_id, run_number, ts_epoch desc, id desc);
create index if not exists metadata_v3_idx_flow_run_id_step_task_name_field on public.metadata_v3 (flow_id, run_id, step_name, task_name, field_name);
create index if not exists metadata_v3_idx_flow_run_id_step_task_id_field on public.metadata_v3 (flow_id, run_id, step_name, task_id, field_name);

create table if not exists public.artifact_v3 (
    flow_id      varchar(255) not null,
    run_number   bigint not null,
    run_id       varchar(255),
    step_name    varchar(255) not null,
    task_id      bigint not null,
    task_name    varchar(255),
    name         varchar(255) not null,
    location     varchar(255) not null,
    ds_type      varchar(255) not null,
    sha          varchar(255),
    type         varchar(255),
    content_type varchar(255),
    user_name    varchar(255),
    attempt_id   smallint not null,
    ts_epoch     bigint not null,
    tags         jsonb,
    system_tags  jsonb,
    primary key (flow_id, run_number, step_name, task_id, attempt_id, name)
);
create index if not exists artifact_v3_idx_flow_run_task_name_ts on public.artifact_v3 (flow_id, run_number, task_id, name, ts_epoch desc);
create index if not exists artifact_v3_idx_flow_run_id_step_task_name_attempt on public.artifact_v3 (flow_id, run_id, step_name, task_name, attempt_id, name);
create index if not exists artifact_v3_idx_flow_run_id_step_task_id_attempt on public.artifact_v3 (flow_id, run_id, step_name, task_id, attempt_id, name);
