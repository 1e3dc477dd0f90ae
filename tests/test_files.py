"""Results are written aside and renamed: a crash mid-write leaves the file that was there."""

import os
import signal
import subprocess
import sys

import pytest

from jaxbert import files


def test_a_killed_writer_leaves_the_old_file(tmp_path):
  path = tmp_path / "glue.json"
  files.write_json(str(path), {"average": 0.5})
  # A process killed outright (no except, no finally) half way through its new content.
  code = ("import os, signal, sys\nfrom jaxbert import files\n"
          "with files.opened(sys.argv[1]) as f:\n"
          "  f.write('{\"average\": 0.')\n  f.flush()\n  os.kill(os.getpid(), signal.SIGKILL)\n")
  done = subprocess.run([sys.executable, "-c", code, str(path)])
  assert done.returncode == -signal.SIGKILL
  assert path.read_text() == '{\n  "average": 0.5\n}\n'
  files.write_json(str(path), {"average": 0.75})  # the next write is not blocked by the debris
  assert path.read_text() == '{\n  "average": 0.75\n}\n'


def test_an_error_mid_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "report.md"
  files.write_text(str(path), "old\n")
  with pytest.raises(RuntimeError), files.opened(str(path)) as f:
    f.write("new, half")
    raise RuntimeError("disk full")
  assert path.read_text() == "old\n"
  assert os.listdir(tmp_path) == ["report.md"]


def test_a_new_file_appears_whole_with_the_mode_open_would_give(tmp_path):
  path = tmp_path / "curves.png"
  with files.replacing(str(path)) as tmp:
    assert tmp.endswith(".png") and os.path.dirname(tmp) == str(tmp_path)  # savefig reads it
    assert not path.exists()
    with open(tmp, "wb") as f:
      f.write(b"\x89PNG")
  assert path.read_bytes() == b"\x89PNG" and os.listdir(tmp_path) == ["curves.png"]
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_sha256_and_same_bytes(tmp_path):
  a, b = tmp_path / "a", tmp_path / "b"
  a.write_bytes(b"abc")
  b.write_bytes(b"abd")
  assert files.sha256(str(a)) == (
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")  # FIPS 180-2's "abc"
  assert files.same_bytes(str(a), str(a)) and not files.same_bytes(str(a), str(b))


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path):
  path = tmp_path / "export"
  with files.replacing_dir(str(path)) as staging:
    (tmp_path / staging / "config.json").write_text("old")
    (tmp_path / staging / "stale.py").write_text("old")
    assert not path.exists()
  assert sorted(os.listdir(path)) == ["config.json", "stale.py"]
  with pytest.raises(RuntimeError), files.replacing_dir(str(path)) as staging:
    (tmp_path / staging / "config.json").write_text("new, half")
    raise RuntimeError("disk full")
  assert (path / "config.json").read_text() == "old" and os.listdir(tmp_path) == ["export"]
  with files.replacing_dir(str(path)) as staging:
    (tmp_path / staging / "config.json").write_text("new")
  assert os.listdir(path) == ["config.json"] and (path / "config.json").read_text() == "new"
  assert os.listdir(tmp_path) == ["export"]  # nothing set aside is left behind
  (tmp_path / "a_file").write_text("mine")
  with pytest.raises(FileExistsError, match="a_file is a file"):
    with files.replacing_dir(str(tmp_path / "a_file")):
      pass
  assert (tmp_path / "a_file").read_text() == "mine"


def test_a_failed_swap_puts_the_old_directory_back(tmp_path, monkeypatch):
  path = tmp_path / "classifier"
  path.mkdir()
  (path / "params.safetensors").write_text("old")
  replace = os.replace

  def refusing(src, dst):  # the rename of the new directory into place fails
    if os.path.basename(str(src)).startswith(".classifier.") and dst == str(path):
      raise OSError("Read-only file system")
    replace(src, dst)
  monkeypatch.setattr(os, "replace", refusing)
  with pytest.raises(OSError, match="Read-only"), files.replacing_dir(str(path)) as staging:
    (tmp_path / staging / "params.safetensors").write_text("new")
  assert (path / "params.safetensors").read_text() == "old"
  assert os.listdir(tmp_path) == ["classifier"]  # neither the new one nor the set-aside left
