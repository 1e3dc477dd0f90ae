"""Writing a file so that no reader, and no crash, ever sees half of it; and comparing files.

Every result a workdir holds goes through `replacing`: the new bytes go to a hidden temporary
name in the same directory (so the rename cannot cross file systems) and are renamed over the
target only once they are complete and flushed. A crash mid-write leaves the old file, or none,
and removes its temporary; `os.replace` is atomic on POSIX and Windows.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile

# mkstemp makes its file private (0600); a result is an ordinary file, so it gets the mode open()
# would give it under this process's umask (read once: reading it means setting it).
_UMASK = os.umask(0o22)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def replacing(path: str):
  """Yields a temporary path beside PATH to write; renames it to PATH when the block ends
  without an error, removes it otherwise. Keeps PATH's extension (savefig and numpy read it)."""
  directory = os.path.dirname(os.path.abspath(path))
  name = os.path.basename(path)
  fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=os.path.splitext(name)[1], dir=directory)
  os.close(fd)
  try:
    yield tmp
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


@contextlib.contextmanager
def opened(path: str, binary: bool = False):
  """A file object whose content becomes PATH only when the block ends without an error."""
  with replacing(path) as tmp:
    with open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())


@contextlib.contextmanager
def replacing_dir(path: str):
  """Yields a new hidden directory beside PATH to fill; when the block ends without an error it
  becomes PATH (what was there is set aside first, then removed), otherwise it is removed. A
  crash leaves the old directory, or none, never a mix of the two."""
  if os.path.lexists(path) and not os.path.isdir(path):
    raise FileExistsError(f"{path} is a file, not a directory; give another path")
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  name = os.path.basename(os.path.abspath(path))
  staging = tempfile.mkdtemp(prefix=f".{name}.", dir=parent)
  try:
    os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp's 0700 would hide it from the user's group
    yield staging
    if not os.path.lexists(path):
      os.replace(staging, path)
      return
    old = tempfile.mkdtemp(prefix=f".{name}.old.", dir=parent)
    aside = os.path.join(old, name)
    try:
      os.replace(path, aside)
    except BaseException:
      os.rmdir(old)
      raise
    try:
      os.replace(staging, path)
    except BaseException:
      os.replace(aside, path)  # the old one back under its name
      os.rmdir(old)
      raise
    shutil.rmtree(old)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def write_text(path: str, text: str):
  with opened(path) as f:
    f.write(text)


def write_bytes(path: str, content: bytes):
  with opened(path, binary=True) as f:
    f.write(content)


def write_json(path: str, content, sort_keys: bool = False):
  """PATH as indented JSON with a final newline."""
  write_text(path, json.dumps(content, indent=2, sort_keys=sort_keys) + "\n")


def sha256(path: str) -> str:
  """The hex digest of a file's bytes, read in 1 MiB blocks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def same_bytes(a: str, b: str) -> bool:
  with open(a, "rb") as f, open(b, "rb") as g:
    return f.read() == g.read()
