"""The UI bundle: pinned-release download with checksum verification (a local HTTP server
serves the fixture zip), the cache, refusing entries that escape the folder, index injection."""

import hashlib
import http.server
import threading
import zipfile

import pytest

from mfs.ui import bundle
from mfs.ui.server import inject_service

from .uikit import bundle_zip


@pytest.fixture
def release_server():
    data = bundle_zip().read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        hits = 0

        def do_GET(self):
            Handler.hits += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield (
            f"http://127.0.0.1:{srv.server_address[1]}/metaflow-ui.zip",
            hashlib.sha256(data).hexdigest(),
            Handler,
        )
    finally:
        srv.shutdown()
        srv.server_close()


def test_download_verifies_and_caches(tmp_path, release_server):
    url, sha, handler = release_server
    folder = bundle.ensure(url=url, sha256=sha, root=tmp_path, progress=lambda m: None)
    assert folder == tmp_path / bundle.UI_VERSION and (folder / "index.html").exists()
    assert (folder / "static").is_dir()
    assert bundle.ensure(url=url, sha256=sha, root=tmp_path) == folder and handler.hits == 1  # cached
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_download_with_wrong_checksum_is_refused(tmp_path, release_server):
    url, sha, _ = release_server
    with pytest.raises(bundle.BundleError, match="expected"):
        bundle.ensure(url=url, sha256="0" * 64, root=tmp_path, progress=lambda m: None)
    assert not (tmp_path / bundle.UI_VERSION).exists()
    assert not list(tmp_path.iterdir())


def test_unreachable_release_says_to_use_a_local_zip(tmp_path):
    with pytest.raises(bundle.BundleError, match="--bundle"):
        bundle.ensure(url="http://127.0.0.1:9/none.zip", root=tmp_path, progress=lambda m: None)


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "static/../../evil.txt", "C:/evil.txt"])
def test_entries_escaping_the_folder_refuse_the_zip(tmp_path, name):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("index.html", "<html><head></head></html>")
        zf.writestr(name, "x")
    with pytest.raises(bundle.BundleError, match="outside"):
        bundle.ensure(str(z), root=tmp_path / "cache")
    assert (
        not (tmp_path / "evil.txt").exists()
        and not (tmp_path / "cache").exists()
        or not any((tmp_path / "cache").iterdir())
    )


def test_local_zip_and_index_injection(tmp_path):
    folder = bundle.ensure(str(bundle_zip()), root=tmp_path)
    html = inject_service((folder / "index.html").read_text())
    assert html.index('<script>window.METAFLOW_SERVICE="/api";</script>') < html.index("</head>")
    with pytest.raises(bundle.BundleError, match="does not exist"):
        bundle.ensure(str(tmp_path / "missing.zip"), root=tmp_path)
