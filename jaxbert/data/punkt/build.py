"""Learns the Punkt sentence splitter's tables from the embedded corpus and writes them here.

  python jaxbert/data/punkt/build.py

NLTK's PunktTrainer (Kiss and Strunk 2006, "Unsupervised Multilingual Sentence Boundary
Detection", Computational Linguistics 32(4)) finds abbreviations, collocations and frequent
sentence starters without labels. It reads the embedded corpus's training split, cleaned as a
store build cleans it, one paragraph per line; the output is NLTK's punkt_tab format (four
sorted text files), so rebuilding on the same corpus and NLTK gives the same bytes.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

FILES = ("abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt")


def tables(params) -> dict[str, str]:
  """punkt_tab's four files of a PunktParameters, each sorted so the bytes are reproducible."""
  rows = {"abbrev_types.txt": sorted(params.abbrev_types),
          "collocations.tab": sorted("\t".join(pair) for pair in params.collocations),
          "ortho_context.tab": sorted(f"{k}\t{v}" for k, v in params.ortho_context.items()),
          "sent_starters.txt": sorted(params.sent_starters)}
  return {name: "\n".join(lines) + "\n" for name, lines in rows.items()}


def main():
  from nltk.tokenize.punkt import PunktTrainer

  from jaxbert import files
  from jaxbert.data import corpus, text

  began = time.time()
  trainer = PunktTrainer()
  chars = 0
  for doc in corpus.documents("train"):
    paragraphs = text.clean(doc)  # one paragraph per line, whitespace normalised
    trainer.train(paragraphs.replace("\n", "\n\n"), finalize=False)
    chars += len(paragraphs)
  trainer.finalize_training()
  out = os.path.join(HERE, "english")
  os.makedirs(out, exist_ok=True)
  for name, body in tables(trainer.get_params()).items():
    files.write_text(os.path.join(out, name), body)
  print(f"learned from {chars / 1e6:.1f}M characters in {time.time() - began:.0f} s: {out}")


if __name__ == "__main__":
  main()
