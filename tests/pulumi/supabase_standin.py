"""A stand-in for the Supabase Management API (validated against Supabase's published document,
see vendor_standin.py) and, under /storage/v1, for a project's Storage API (not in that
document: answered as Supabase Storage does, unvalidated). It remembers what exists, so reads
and deletes of vanished things answer 404 as the real services do."""

from __future__ import annotations

from vendor_standin import StandIn

REF = "qwertyuiopasdfghjklz"
NOW = "2025-01-01T00:00:00Z"
ANON, SERVICE = "eyJ.anon.jwt", "eyJ.service.jwt"


def project(status):
    return {
        "id": REF,
        "ref": REF,
        "organization_id": "org",
        "organization_slug": "my-org",
        "name": "mfs",
        "region": "us-east-1",
        "created_at": NOW,
        "status": status,
    }


def answer(api, method, path, query, body):
    st = api.state
    p = f"/v1/projects/{REF}"
    if (method, path) == ("POST", "/v1/projects"):
        st.update(project="COMING_UP", polls=0, password=body["db_pass"])
        return 201, project("COMING_UP")
    if path.startswith(p) and "project" not in st:
        return 404, {"message": "project not found"}
    if method == "GET" and path == p:
        st["polls"] += 1
        if st["polls"] >= 2 and st["project"] == "COMING_UP":
            st["project"] = "ACTIVE_HEALTHY"
        return 200, {
            **project(st["project"]),
            "database": {
                "host": f"db.{REF}.supabase.co",
                "version": "15.8",
                "postgres_engine": "15",
                "release_channel": "ga",
            },
        }
    if method == "DELETE" and path == p:
        del st["project"]
        return 200, {"id": 1, "ref": REF, "name": "mfs"}
    if path == f"{p}/database/password":
        st["password"] = body["password"]
        return 200, {"message": "ok"}
    if path.endswith("/config/database/pooler"):
        return 200, [
            {
                "identifier": REF,
                "database_type": "PRIMARY",
                "is_using_scram_auth": True,
                "db_user": f"postgres.{REF}",
                "db_host": "aws-0-us-east-1.pooler.supabase.com",
                "db_port": 6543,
                "db_name": "postgres",
                "connection_string": "postgresql://x",
                "connectionString": "postgresql://x",
                "default_pool_size": 15,
                "max_client_conn": 200,
                "pool_mode": "transaction",
            }
        ]
    if path.endswith("/api-keys"):
        return 200, [
            {"name": "anon", "api_key": ANON, "type": "legacy"},
            {"name": "service_role", "api_key": SERVICE, "type": "legacy"},
        ]
    functions = st.setdefault("functions", set())
    secrets = st.setdefault("secrets", set())
    if path.endswith("/functions/deploy"):
        functions.add(query["slug"][0])
        return 201, {
            "id": "fn-1",
            "slug": query["slug"][0],
            "name": query["slug"][0],
            "status": "ACTIVE",
            "version": 1,
        }
    if "/functions/" in path:
        slug = path.rsplit("/", 1)[1]
        if slug not in functions:
            return 404, {"message": "function not found"}
        if method == "DELETE":
            functions.discard(slug)
            return 200, {}
        return 200, {
            "id": "fn-1",
            "slug": slug,
            "name": slug,
            "status": "ACTIVE",
            "version": 1,
            "created_at": 0,
            "updated_at": 0,
        }
    if path.endswith("/secrets"):
        if method == "POST":
            secrets.update(s["name"] for s in body)
            return 201, {}
        secrets.difference_update(body)
        return 200, {}
    return (201 if method == "POST" else 200), {}


def storage(api, method, path, body):
    """Supabase Storage's bucket routes, as `POST /bucket`, `GET|DELETE /bucket/{id}` and
    `POST /bucket/{id}/empty` answer them (a non-empty bucket cannot be deleted)."""
    buckets = api.state.setdefault("buckets", {})  # id -> number of objects
    rest = path[len("/storage/v1/bucket") :].strip("/").split("/")
    if method == "POST" and rest == [""]:
        buckets[body["id"]] = 0
        return 200, {"name": body["id"]}
    if rest[0] not in buckets or "project" not in api.state:
        return 404, {"statusCode": "404", "error": "Bucket not found", "message": "Bucket not found"}
    if method == "POST" and rest[1:] == ["empty"]:
        buckets[rest[0]] = 0
        return 200, {"message": "Successfully emptied"}
    if method == "DELETE":
        if buckets[rest[0]]:
            return 409, {"statusCode": "409", "error": "Bucket not empty", "message": "not empty"}
        del buckets[rest[0]]
        return 200, {"message": "Successfully deleted"}
    return 200, {"id": rest[0], "name": rest[0], "public": False}


def supabase_standin() -> StandIn:
    def route(api, method, path, query, body):
        if path.startswith("/storage/v1/"):
            return storage(api, method, path, body)
        return answer(api, method, path, query, body)

    return StandIn("supabase-management-api.openapi.json", route, undocumented="/storage/v1/")
