"""A stand-in for the Neon API v2, validated against Neon's OpenAPI document (vendor_standin.py),
answering from its response schemas: one organization by default (so `org_id` is required, as
Neon answers 400 without it for such accounts), projects that exist until deleted, operations
that finish after one poll."""

from __future__ import annotations

from vendor_standin import StandIn

ORG = "org-quiet-sun-12345678"
OP = "3f0b9a2c-4c1e-4d0a-9d6e-2b7f1c9e8a11"
HOST, POOLER = "ep-cool-1.us-east-2.aws.neon.tech", "ep-cool-1-pooler.us-east-2.aws.neon.tech"


def answer(api, method, path, query, body):
    st = api.state
    projects = st.setdefault("projects", {})
    orgs = st.setdefault("orgs", [ORG])
    if path == "/users/me/organizations":
        return 200, {"organizations": [api.example("Organization", id=o, name=o, handle=o) for o in orgs]}
    if (method, path) == ("POST", "/projects"):
        project = body["project"]
        if orgs and project.get("org_id") not in orgs:
            return 400, {"code": "", "message": "org_id is required"}
        pid = f"proj-{len(st.setdefault('made', [])) + 1}"
        st["made"].append(pid)
        projects[pid] = project["name"]
        uri = f"postgresql://neondb_owner:npg_pw@{HOST}/neondb?sslmode=require"
        op = api.example("Operation", id=OP, project_id=pid, action="create_timeline", status="running")
        return 201, {
            "project": api.example("Project", id=pid, name=project["name"]),
            "connection_uris": [
                {
                    "connection_uri": uri,
                    "connection_parameters": {
                        "database": "neondb",
                        "password": "npg_pw",
                        "role": "neondb_owner",
                        "host": HOST,
                        "pooler_host": POOLER,
                    },
                }
            ],
            "roles": [],
            "databases": [],
            "operations": [op],
            "branch": api.example("Branch", project_id=pid),
            "endpoints": [],
        }
    pid = path.split("/")[2]
    if pid not in projects:
        return 404, {"code": "", "message": "project not found"}
    if "/operations/" in path:
        status = st.get("operation_status", "finished")
        return 200, {
            "operation": api.example(
                "Operation", id=OP, project_id=pid, action="create_timeline", status=status
            )
        }
    if method == "DELETE":
        name = projects.pop(pid)
        return 200, {"project": api.example("Project", id=pid, name=name)}
    if method == "PATCH":
        projects[pid] = body["project"]["name"]
        return 200, {"project": api.example("Project", id=pid, name=projects[pid]), "operations": []}
    return 200, {"project": api.example("Project", id=pid, name=projects[pid])}


def neon_standin() -> StandIn:
    return StandIn(
        "neon-api-v2.openapi.json",
        answer,
        error_body=lambda status: {"code": str(status), "message": "error"},
    )
