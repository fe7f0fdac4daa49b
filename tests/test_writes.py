"""The one writer of every output file: atomic for regular files, and never
damaging the real target (devices, FIFOs, symlinks, a private file's mode)."""

import hashlib
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sknn._persistence import OutputPathError, atomic_write, check_writable

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file types")

REPO = Path(__file__).resolve().parents[1]


def write_bytes(data):
    return lambda f: f.write(data)


def leftovers(folder, keep):
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in keep)


def test_dev_null_is_refused_and_stays_a_device(tmp_path):
    """/dev/null as an output. Every write goes through a symlink in tmp_path:
    the writer follows it to the device (what this checks), while a writer
    that regressed to replacing its path would replace the link, never the
    machine's /dev/null (the old writer, run as root, replaced /dev/null with
    a regular file)."""
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    null = tmp_path / "out.sknn"
    null.symlink_to("/dev/null")
    with pytest.raises(OutputPathError, match=r"-> /dev/null\).*a character device"):
        atomic_write(null, write_bytes(b"model"))
    assert null.is_symlink()
    with pytest.raises(OutputPathError, match="a character device"):
        check_writable("/dev/null")  # checks only; never writes
    with pytest.raises(OutputPathError, match="a character device"):
        check_writable(null)
    # a stream output (CSV predictions) is written straight into the device
    atomic_write(null, lambda f: f.write("a,b\n"), mode="w", special="direct")
    assert check_writable(null, special="direct") == Path("/dev/null")
    assert null.is_symlink() and os.readlink(null) == "/dev/null"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert leftovers(tmp_path, {"out.sknn"}) == []


def test_symlink_target_is_replaced_and_the_link_kept(tmp_path):
    real_dir = tmp_path / "store"
    real_dir.mkdir()
    target = real_dir / "model.bin"
    target.write_bytes(b"old")
    link = tmp_path / "model.bin"
    link.symlink_to(target)
    chain = tmp_path / "latest"
    chain.symlink_to(link.name)  # a relative link to a link
    atomic_write(chain, write_bytes(b"new"))
    assert chain.is_symlink() and link.is_symlink()
    assert os.readlink(chain) == "model.bin"
    assert target.read_bytes() == b"new"
    assert leftovers(real_dir, {"model.bin"}) == []
    assert leftovers(tmp_path, {"store", "model.bin", "latest"}) == []
    # a dangling link creates its target
    dangling = tmp_path / "dangling"
    dangling.symlink_to(real_dir / "created.bin")
    atomic_write(dangling, write_bytes(b"x"))
    assert dangling.is_symlink() and (real_dir / "created.bin").read_bytes() == b"x"


def test_fifo_is_refused_or_written_directly(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="FIFO"):
        atomic_write(fifo, write_bytes(b"model"))
    with pytest.raises(OutputPathError, match="FIFO"):
        check_writable(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    atomic_write(fifo, lambda f: f.write("x,y\n1,2\n"), mode="w", special="direct")
    reader.join(10)
    assert received == [b"x,y\n1,2\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_existing_file_keeps_its_mode_new_file_follows_the_umask(tmp_path):
    private = tmp_path / "private.sknn"
    private.write_bytes(b"old")
    private.chmod(0o600)
    atomic_write(private, write_bytes(b"new"))
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert private.read_bytes() == b"new"
    shared = tmp_path / "shared.csv"
    shared.write_text("old")
    shared.chmod(0o664)
    atomic_write(shared, lambda f: f.write("new"), mode="w")
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o664
    old_umask = os.umask(0o027)
    try:
        atomic_write(tmp_path / "fresh.bin", write_bytes(b"x"))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / "fresh.bin").st_mode) == 0o640
    assert leftovers(tmp_path, {"private.sknn", "shared.csv", "fresh.bin"}) == []


def test_directories_missing_folders_and_failed_writes(tmp_path):
    with pytest.raises(OutputPathError, match="is a directory"):
        atomic_write(tmp_path, write_bytes(b"x"))
    with pytest.raises(OutputPathError, match="is a directory"):
        check_writable(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_writable(tmp_path / "missing" / "model.sknn")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write(tmp_path / "missing" / "model.sknn", write_bytes(b"x"))
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, {"model.bin"}) == []
    assert check_writable(target) == target
    assert check_writable(tmp_path / "new.sknn") == tmp_path / "new.sknn"
    assert leftovers(tmp_path, {"model.bin"}) == []  # the check wrote nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_file_and_folder_are_refused_before_writing(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "model.sknn").write_bytes(b"old")
    (locked / "model.sknn").chmod(0o444)
    with pytest.raises(OutputPathError, match="read-only"):
        check_writable(locked / "model.sknn")
    with pytest.raises(OutputPathError, match="read-only"):
        atomic_write(locked / "model.sknn", write_bytes(b"new"))
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match="is not writable"):
            check_writable(locked / "other.sknn")
    finally:
        locked.chmod(0o755)
    assert (locked / "model.sknn").read_bytes() == b"old"


def test_message_is_one_line_and_names_the_path(tmp_path):
    with pytest.raises(OutputPathError) as info:
        check_writable("/dev/null")
    assert "\n" not in str(info.value) and "/dev/null" in str(info.value)
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)


#: a child that saves versions of one file forever; each version is a
#: complete, self-checking payload (a counter, 2 MiB of data and its sha256)
CHILD = textwrap.dedent("""
    import hashlib, sys
    from sknn._persistence import atomic_write

    target = sys.argv[1]
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        body = str(i).encode() * (2**21 // len(str(i)))
        def write(f, body=body):
            for start in range(0, len(body), 2**16):
                f.write(body[start:start + 2**16])
            f.write(hashlib.sha256(body).hexdigest().encode())
        atomic_write(target, write)
""")


def complete(data):
    body, digest = data[:-64], data[-64:]
    return hashlib.sha256(body).hexdigest().encode() == digest


def test_sigkill_during_saves_leaves_no_temp_file_and_a_whole_target(tmp_path):
    target = tmp_path / "model.bin"
    body = b"0" * 100
    target.write_bytes(body + hashlib.sha256(body).hexdigest().encode())
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(12):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(target)],
                                 stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert complete(target.read_bytes())
        if sys.platform.startswith("linux"):
            # O_TMPFILE: the unfinished file never had a name. Only a kill
            # between naming the complete file and renaming it (two calls,
            # microseconds; about 1 kill in 300 here) leaves one, which the
            # next save removes once stale
            left = leftovers(tmp_path, {"model.bin"})
            assert all(n.startswith(".model.bin.sknn-") for n in left), left
            assert len(left) <= 1, left
            for name in left:
                assert complete((tmp_path / name).read_bytes())
                os.utime(tmp_path / name, (time.time() - 60,) * 2)
                atomic_write(target, write_bytes(target.read_bytes()))
            assert leftovers(tmp_path, {"model.bin"}) == []


def test_a_stale_linked_temp_file_is_removed_by_the_next_save(tmp_path):
    target = tmp_path / "model.bin"
    stale = tmp_path / ".model.bin.sknn-0123abcd.tmp"
    fresh = tmp_path / ".model.bin.sknn-89abcdef.tmp"  # a save in progress
    other = tmp_path / ".model.bin.k3j_x9q2.tmp"  # not this writer's pattern
    for path in (stale, fresh, other):
        path.write_bytes(b"x")
    os.utime(stale, (time.time() - 60,) * 2)
    os.utime(other, (time.time() - 60,) * 2)
    atomic_write(target, write_bytes(b"new"))
    assert leftovers(tmp_path, {"model.bin"}) == sorted([fresh.name, other.name])


@pytest.mark.parametrize("unnamed", [True, False], ids=["o_tmpfile", "named-temp"])
def test_both_temp_file_strategies_keep_mode_and_owner(tmp_path, monkeypatch,
                                                       unnamed):
    import sknn._persistence as persistence

    if not unnamed:
        monkeypatch.setattr(persistence, "_open_unnamed", lambda folder: None)
    target = tmp_path / "model.sknn"
    target.write_bytes(b"old")
    target.chmod(0o640)
    owner = (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        owner = (1234, 5678)
        os.chown(target, *owner)
    atomic_write(target, write_bytes(b"new"))
    st = os.stat(target)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, *owner)
    assert target.read_bytes() == b"new"
    atomic_write(tmp_path / "new.csv", lambda f: f.write("a\n"), mode="w")
    assert (tmp_path / "new.csv").read_text() == "a\n"
    assert leftovers(tmp_path, {"model.sknn", "new.csv"}) == []
