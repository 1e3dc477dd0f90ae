"""Text clean-up with NLTK, fully offline.

Sentences are split by NLTK's Punkt with tables shipped in punkt/english/ (nltk.download() would
need the network); the stopword list is NLTK's, shipped here for the same reason.
"""
import functools
import hashlib
import os
import re
import sys
import unicodedata

PUNKT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "punkt", "english")
PUNKT_FILES = ("abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt")

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


@functools.cache
def sentence_splitter():
  """NLTK's Punkt sentence splitter with the tables jaxbert ships (punkt/english/, learned from
  the embedded corpus by punkt/build.py): the same splits on every machine, whatever NLTK data
  it has, and no download."""
  from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

  def lines(name):
    with open(os.path.join(PUNKT_DIR, name), encoding="utf-8") as f:
      return [line for line in f.read().split("\n") if line]

  params = PunktParameters()
  params.abbrev_types = set(lines("abbrev_types.txt"))
  params.collocations = {tuple(line.split("\t")) for line in lines("collocations.tab")}
  params.sent_starters = set(lines("sent_starters.txt"))
  for line in lines("ortho_context.tab"):
    word, flags = line.split("\t")
    params.ortho_context[word] = int(flags)
  return PunktSentenceTokenizer(params)


def punkt_digest() -> str:
  """The shipped tables' hash: a token store split into sentences is keyed by it."""
  digest = hashlib.sha256()
  for name in PUNKT_FILES:
    with open(os.path.join(PUNKT_DIR, name), "rb") as f:
      digest.update(name.encode() + b"\0" + f.read())
  return digest.hexdigest()[:16]


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
  split = sentence_splitter().tokenize if split_sentences else (lambda para: [para])
  doc = unicodedata.normalize("NFKC", doc)
  out = []
  for para in _PARAGRAPH.split(doc):
    para = " ".join(para.split())
    for s in split(para) if para else ():
      if remove_stopwords:
        s = _drop_stopwords(s)
      if remove_punctuation:
        s = _INNER.sub("", s).translate(_punctuation())
      if s := " ".join(s.split()):
        out.append(s)
  return "\n".join(out)
