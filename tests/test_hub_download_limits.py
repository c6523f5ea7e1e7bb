"""The download layer against hostile or broken servers, over a real socket: no spliced resumes, no writes
through planted links, bounded size and time, identity encoding, clear errors (DNS, redirects, full disk)."""
import hashlib
import os
import subprocess
import sys
import textwrap
import time

import pytest

from hub_server import FileServer
from sszoo.hub import DownloadError, NetworkError
from sszoo.hub.download import DownloadPolicy, download_file

FAST = DownloadPolicy(connect_timeout=2.0, read_timeout=2.0, retries=2, backoff=0.0)


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- item 2: a resume never splices two versions of a file ---------------------------------------

def test_resume_sends_if_range_and_restarts_when_the_file_changed(server, tmp_path):
    old, new = os.urandom(300_000), os.urandom(300_000)
    url = server.add("/m/a.pth", old, faults=["truncate+change"], versions=[new])
    got = download_file(url, tmp_path / "a.pth", policy=FAST, progress=False)
    assert (tmp_path / "a.pth").read_bytes() == new and got == sha(new)  # all new, not half old + half new
    first, second = server.headers[0], server.headers[1]
    assert "Range" not in first and second["Range"].startswith("bytes=") and second["If-Range"]
    assert server.requests[1][2] is not None


def test_resume_continues_when_the_file_is_unchanged(server, tmp_path):
    data = os.urandom(300_000)
    url = server.add("/m/b.pth", data, faults=["truncate"])
    assert download_file(url, tmp_path / "b.pth", policy=FAST, progress=False) == sha(data)
    assert server.headers[1]["If-Range"] == server.headers[0].get("If-Range", server._validators("/m/b.pth")[0])


def test_server_that_ignores_if_range_is_caught_by_its_etag(server, tmp_path):
    server.ignore_if_range = True  # answers 206 with the new file's bytes after the old file's first half
    old, new = os.urandom(300_000), os.urandom(300_000)
    url = server.add("/m/c.pth", old, faults=["truncate+change"], versions=[new])
    assert download_file(url, tmp_path / "c.pth", policy=FAST, progress=False) == sha(new)
    assert (tmp_path / "c.pth").read_bytes() == new
    assert server.gets("/m/c.pth") == 3  # truncated, a refused 206, then the whole file


def test_without_a_validator_nothing_is_resumed_or_kept(server, tmp_path):
    server.validators = False
    data = os.urandom(300_000)
    url = server.add("/m/d.pth", data, faults=["truncate"] * 5)
    with pytest.raises(NetworkError, match="No partial file was kept"):
        download_file(url, tmp_path / "d.pth", policy=FAST, progress=False)
    assert os.listdir(tmp_path) == []
    assert all(r is None for _, _, r in server.requests)  # never a Range without something to check it against


def test_partial_file_kept_across_runs_resumes_only_the_same_version(server, tmp_path):
    old, new = os.urandom(300_000), os.urandom(300_000)
    url = server.add("/m/e.pth", old, faults=["truncate"])
    once = DownloadPolicy(connect_timeout=2.0, read_timeout=2.0, retries=0, backoff=0.0)
    with pytest.raises(NetworkError, match=r"partial file of .* is kept at .*e\.pth\.part"):
        download_file(url, tmp_path / "e.pth", policy=once, progress=False)
    assert 0 < (tmp_path / "e.pth.part").stat().st_size <= len(old) // 2
    server.replace("/m/e.pth", new)  # a new upload between the two runs
    assert download_file(url, tmp_path / "e.pth", policy=once, progress=False) == sha(new)
    assert sorted(os.listdir(tmp_path)) == ["e.pth"]


# ---- item 3: nothing is written through a link planted in downloads/ -----------------------------

@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_planted_link_at_the_partial_file_is_never_written_through(server, tmp_path, kind):
    data = os.urandom(200_000)
    url = server.add("/m/f.pth", data)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    dl = tmp_path / "downloads"
    dl.mkdir()
    part = dl / "f.pth.part"
    if kind == "symlink":
        part.symlink_to(outside)
    else:
        os.link(outside, part)
    # a validator for the URL makes the link look like a resumable partial download
    (dl / "f.pth.part.json").write_text('{"url": "%s", "etag": "\\"x\\"", "last_modified": null}' % url)
    assert download_file(url, dl / "f.pth", policy=FAST, progress=False) == sha(data)
    assert outside.read_bytes() == b"precious"
    assert (dl / "f.pth").read_bytes() == data and not os.path.islink(dl / "f.pth")
    assert "Range" not in server.headers[0]  # it started over instead of appending


# ---- item 4: bounded downloads -----------------------------------------------------------------

def test_identity_encoding_is_asked_for_and_a_compressed_answer_refused(server, tmp_path):
    data = bytes(2_000_000)  # compresses to a few KB: a decompression bomb in small
    url = server.add("/m/g.pth", data, faults=["gzip"])
    with pytest.raises(DownloadError, match="Content-Encoding: gzip"):
        download_file(url, tmp_path / "g.pth", policy=FAST, progress=False)
    assert server.headers[0]["Accept-Encoding"] == "identity"
    assert os.listdir(tmp_path) == []
    download_file(url, tmp_path / "g.pth", policy=FAST, progress=False)  # the plain answer is fine
    assert (tmp_path / "g.pth").read_bytes() == data


def test_huge_content_length_is_refused_before_the_first_byte(server, tmp_path):
    url = server.add("/m/h.pth", os.urandom(1000), faults=["huge_length"])
    with pytest.raises(DownloadError, match="SSZOO_MAX_DOWNLOAD"):
        download_file(url, tmp_path / "h.pth", policy=FAST, progress=False)
    assert os.listdir(tmp_path) == []


def test_free_disk_space_is_checked_up_front(server, tmp_path):
    url = server.add("/m/i.pth", os.urandom(1000), faults=["huge_length"])
    roomy = DownloadPolicy(connect_timeout=2.0, read_timeout=2.0, retries=0, backoff=0.0, max_bytes=10 ** 15)
    with pytest.raises(DownloadError, match="not enough disk space"):
        download_file(url, tmp_path / "i.pth", policy=roomy, progress=False)
    assert os.listdir(tmp_path) == []


def test_endless_body_is_cut_at_the_cap(server, tmp_path):
    url = server.add("/m/j.pth", b"", faults=["endless"])
    small = DownloadPolicy(connect_timeout=2.0, read_timeout=2.0, retries=0, backoff=0.0, max_bytes=1 << 20)
    with pytest.raises(DownloadError, match="sent more than 1.0 MiB"):
        download_file(url, tmp_path / "j.pth", policy=small, progress=False)
    assert os.listdir(tmp_path) == []


def test_expected_size_from_the_lock_file_caps_the_download(server, tmp_path):
    data = os.urandom(5000)
    url = server.add("/m/k.pth", data)
    with pytest.raises(DownloadError, match="lock file pins 4000"):
        download_file(url, tmp_path / "k.pth", expected_size=4000, policy=FAST, progress=False)
    assert os.listdir(tmp_path) == []


def test_a_drip_feed_hits_the_total_deadline(server, tmp_path):
    server.drip_bytes, server.drip_interval = 1024, 0.05  # 20 KiB/s, each read far inside the read timeout
    url = server.add("/m/l.pth", os.urandom(1_000_000), faults=["drip"])
    policy = DownloadPolicy(connect_timeout=2.0, read_timeout=2.0, retries=2, backoff=0.0, deadline=1.0)
    t = time.monotonic()
    with pytest.raises(NetworkError, match="did not finish within 1 s"):
        download_file(url, tmp_path / "l.pth", policy=policy, progress=False)
    assert time.monotonic() - t < 4.0


def test_deadline_and_size_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SSZOO_DEADLINE", "7.5")
    monkeypatch.setenv("SSZOO_MAX_DOWNLOAD", "512M")
    p = DownloadPolicy.from_env()
    assert p.deadline == 7.5 and p.max_bytes == 512 * 1024 ** 2
    assert DownloadPolicy().max_bytes == 4 * 1024 ** 3 and DownloadPolicy().deadline == 3600.0
    monkeypatch.setenv("SSZOO_MAX_DOWNLOAD", "lots")
    with pytest.raises(ValueError, match="SSZOO_MAX_DOWNLOAD"):
        DownloadPolicy.from_env()


def test_an_html_page_served_with_200_is_refused(server, tmp_path):
    url = server.add("/m/m.pth", os.urandom(1000), faults=["html"])
    with pytest.raises(DownloadError, match="HTML page"):
        download_file(url, tmp_path / "m.pth", policy=FAST, progress=False)
    assert os.listdir(tmp_path) == []


# ---- item 10: redirects and a full disk get the hub's errors -------------------------------------

def test_redirect_loop_and_redirect_to_another_scheme(server, tmp_path):
    loop = server.redirect("/loop.pth", "/loop.pth")
    with pytest.raises(DownloadError, match="redirect loop"):
        download_file(loop, tmp_path / "x.pth", policy=FAST, progress=False)
    for target in ("ftp://127.0.0.1/x.pth", "file:///etc/passwd"):
        url = server.redirect("/away.pth", target)
        with pytest.raises(DownloadError, match="only http"):
            download_file(url, tmp_path / "x.pth", policy=FAST, progress=False)
    assert os.listdir(tmp_path) == []


_FULL_DISK_CHILD = textwrap.dedent("""
    import os, resource, signal, sys
    from sszoo.hub import DownloadError
    from sszoo.hub.download import DownloadPolicy, download_file
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write() fails with EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    try:
        download_file(sys.argv[1], sys.argv[2], policy=DownloadPolicy(retries=0), progress=False)
    except DownloadError as e:
        print("ERROR", e)
""")


def test_a_full_disk_deletes_the_partial_file(server, tmp_path):
    # a real process whose file-size limit makes write() fail like a full disk
    url = server.add("/m/n.pth", os.urandom(400_000))
    dest = tmp_path / "n.pth"
    out = subprocess.run([sys.executable, "-c", _FULL_DISK_CHILD, url, str(dest)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ERROR the disk is full" in out.stdout and "partial file was deleted" in out.stdout
    assert os.listdir(tmp_path) == []


# ---- item 11: an offline machine gets a true and useful message ----------------------------------

def test_dns_failure_is_not_retried_and_says_no_partial_file(tmp_path):
    retries = []
    t = time.monotonic()
    with pytest.raises(NetworkError) as e:
        download_file("http://weights.sszoo-test.invalid/x-12345678.pth", tmp_path / "x.pth",
                      policy=DownloadPolicy(retries=3, backoff=5.0), progress=False,
                      on_retry=lambda n, why: retries.append(n))
    msg = str(e.value)
    assert "cannot resolve the host 'weights.sszoo-test.invalid'" in msg and "not retried" in msg
    assert "No partial file was kept" in msg and "is kept at" not in msg
    assert retries == [] and time.monotonic() - t < 5.0  # no backoff: a missing name does not come back in 1 s
    assert os.listdir(tmp_path) == []


def test_connection_refused_message_is_true_about_the_partial_file(tmp_path):
    s = FileServer()
    url = s.url + "/gone.pth"
    s.close()
    with pytest.raises(NetworkError) as e:
        download_file(url, tmp_path / "g.pth", policy=DownloadPolicy(retries=1, backoff=0.0), progress=False)
    assert "after 2 attempts" in str(e.value) and "No partial file was kept" in str(e.value)


def test_load_on_a_machine_without_dns_explains_the_offline_way(tmp_path, monkeypatch):
    from sszoo.hub import load_pretrained
    from sszoo.registry import get_entry
    monkeypatch.setenv("SSZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SSZOO_MIRROR", "http://mirror.sszoo-test.invalid")
    monkeypatch.setenv("SSZOO_RETRIES", "3")
    monkeypatch.setenv("SSZOO_BACKOFF", "5")
    for var in ("SSZOO_OFFLINE", "HF_HUB_OFFLINE", "SSZOO_LOCKFILE", "SSZOO_REQUIRE_HASHES"):
        monkeypatch.delenv(var, raising=False)
    entry = get_entry("pspnet_r18_d8_cityscapes")
    with pytest.raises(NetworkError) as e:
        load_pretrained(entry, True)
    msg = str(e.value)
    file_name = entry.weights.url.rsplit("/", 1)[1]
    assert "not retried" in msg and "No partial file was kept" in msg
    assert "SSZOO_OFFLINE=1" in msg and str(tmp_path / "home" / "downloads" / file_name) in msg
    assert not os.listdir(tmp_path / "home" / "downloads")
