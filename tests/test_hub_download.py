"""The download layer over a real socket: hash check, resume with Range, retries, timeouts, errors."""
import hashlib
import os

import pytest

from hub_server import FileServer
from sszoo.hub.download import (DownloadError, DownloadPolicy, HashMismatchError, download_file,
                                sha256_prefix_from_name)

FAST = DownloadPolicy(connect_timeout=2.0, read_timeout=2.0, retries=2, backoff=0.0)


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.close()


def payload(n: int = 300_000) -> bytes:
    return os.urandom(n)


def test_prefix_parsed_from_published_names():
    assert sha256_prefix_from_name("https://x/pspnet_r50-d8_512x1024_40k_cityscapes_20200605_003338-2966598c.pth") \
        == "2966598c"
    assert sha256_prefix_from_name("https://download.pytorch.org/models/resnet50-0676ba61.pth") == "0676ba61"
    assert sha256_prefix_from_name("https://x/deeplabv3_resnet50os8_ade20k.pth") is None


def test_download_checks_hash_and_renames(server, tmp_path):
    data = payload()
    digest = hashlib.sha256(data).hexdigest()
    url = server.add(f"/m/ckpt-{digest[:8]}.pth", data)
    dest = tmp_path / "ckpt.pth"
    got = download_file(url, dest, sha256_prefix=digest[:8], policy=FAST, progress=False)
    assert got == digest
    assert dest.read_bytes() == data
    assert not (tmp_path / "ckpt.pth.part").exists()


def test_wrong_hash_is_refused_and_nothing_is_left(server, tmp_path):
    data = payload()
    digest = hashlib.sha256(data).hexdigest()
    wrong = "0" * 8 if not digest.startswith("0" * 8) else "f" * 8
    url = server.add(f"/m/ckpt-{wrong}.pth", data)
    with pytest.raises(HashMismatchError) as e:
        download_file(url, tmp_path / "ckpt.pth", sha256_prefix=wrong, policy=FAST, progress=False)
    assert wrong in str(e.value) and digest in str(e.value)
    assert os.listdir(tmp_path) == []


def test_truncated_transfer_resumes_with_range(server, tmp_path):
    data = payload()
    digest = hashlib.sha256(data).hexdigest()
    url = server.add("/m/a.pth", data, faults=["truncate"])
    got = download_file(url, tmp_path / "a.pth", sha256_prefix=digest[:8], policy=FAST, progress=False)
    assert got == digest and (tmp_path / "a.pth").read_bytes() == data
    ranges = [r for _, p, r in server.requests if p == "/m/a.pth"]
    assert ranges[0] is None and ranges[1] is not None  # the second request resumed what had arrived
    resumed_at = int(ranges[1][len("bytes="):-1])
    assert 0 < resumed_at <= len(data) // 2


def test_truncated_transfer_restarts_when_server_ignores_range(server, tmp_path):
    server.ignore_range = True
    data = payload()
    digest = hashlib.sha256(data).hexdigest()
    url = server.add("/m/b.pth", data, faults=["truncate", "truncate"])
    got = download_file(url, tmp_path / "b.pth", sha256_prefix=digest[:8], policy=FAST, progress=False)
    assert got == digest and (tmp_path / "b.pth").read_bytes() == data
    assert server.gets("/m/b.pth") == 3


def test_truncated_every_time_fails_without_a_complete_file(server, tmp_path):
    data = payload()
    url = server.add("/m/c.pth", data, faults=["truncate"] * 3)
    server.ignore_range = True
    with pytest.raises(DownloadError, match="after 3 attempts"):
        download_file(url, tmp_path / "c.pth", policy=FAST, progress=False)
    assert not (tmp_path / "c.pth").exists()  # only the .part remains, for a later resume


def test_404_is_a_clear_error_without_retries(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as e:
        download_file(server.url + "/missing-12345678.pth", tmp_path / "x.pth", policy=FAST, progress=False)
    assert "/missing-12345678.pth" in str(e.value) and "SSZOO_MIRROR" in str(e.value)
    assert server.gets("/missing-12345678.pth") == 1
    assert os.listdir(tmp_path) == []


def test_500_is_retried_then_reported(server, tmp_path):
    url = server.add("/m/d.pth", b"x", faults=["500"] * 10)
    with pytest.raises(DownloadError, match=r"after 3 attempts; last error: HTTP 500"):
        download_file(url, tmp_path / "d.pth", policy=FAST, progress=False)
    assert server.gets("/m/d.pth") == 3


def test_transient_500_recovers(server, tmp_path):
    data = payload(1000)
    url = server.add("/m/e.pth", data, faults=["500"])
    download_file(url, tmp_path / "e.pth", policy=FAST, progress=False)
    assert (tmp_path / "e.pth").read_bytes() == data


def test_read_timeout_is_retried(server, tmp_path):
    server.stall_seconds = 1.5
    data = payload(1000)
    url = server.add("/m/f.pth", data, faults=["stall"])
    policy = DownloadPolicy(connect_timeout=1.0, read_timeout=0.5, retries=1, backoff=0.0)
    download_file(url, tmp_path / "f.pth", policy=policy, progress=False)
    assert (tmp_path / "f.pth").read_bytes() == data
    assert server.gets("/m/f.pth") == 2


def test_connection_refused_is_reported(tmp_path):
    s = FileServer()
    url = s.url + "/gone.pth"
    s.close()  # nothing listens on that port any more
    with pytest.raises(DownloadError, match="connection failed"):
        download_file(url, tmp_path / "g.pth", policy=DownloadPolicy(retries=1, backoff=0.0), progress=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="not an http"):
        download_file("ftp://x/y.pth", "/tmp/y.pth")
    os.environ["SSZOO_RETRIES"] = "many"
    try:
        with pytest.raises(ValueError, match="SSZOO_RETRIES"):
            DownloadPolicy.from_env()
    finally:
        del os.environ["SSZOO_RETRIES"]
