"""What a model was trained on, as the SOURCES.md files shipped beside the data give it: each
part's name, what it is, its licence and its language."""

import pathlib
import re
from typing import NamedTuple

import importlib_resources

from jaxbert.data import corpus
from jaxbert.data import sources as sources_lib

# Licences as the SOURCES.md files name them (patterns) -> the Hub's licence identifiers. The
# public domain has no identifier there; such data makes the card's licence "other".
LICENCE_IDS = ((r"\bCC0\b", "cc0-1.0"), (r"\bPDDL\b", "pddl"), (r"\bMIT\b", "mit"),
               (r"\bApache-2\.0\b", "apache-2.0"), (r"(?i:\bpublic domain\b)", "public-domain"))
LANGUAGES = {"English": "en"}


class Part(NamedTuple):
  """One piece of training data: its name, what it is, its licence as its SOURCES.md gives it
  ("" when unknown) and the language its SOURCES.md names (None when it names none)."""
  name: str
  about: str = ""
  licence: str = ""
  lang: str | None = None


def embedded_files(markdown: str) -> dict[str, dict]:
  """{file: its row} of embedded/SOURCES.md's table, {header: cell} with backticks dropped:
  "original work", "licence", ..."""
  lines = [line.strip() for line in markdown.splitlines() if line.strip().startswith("|")]
  cells = [[c.strip().strip("`") for c in line.strip("|").split("|")] for line in lines]
  rows = [dict(zip(cells[0], row)) for row in cells[2:]]  # [1] is the |---| line
  return {row["file"]: row for row in rows if "file" in row}


def labelled_tasks(markdown: str) -> dict[str, dict]:
  """{task: {"title", "licence"}} of labelled/SOURCES.md: each "## `task`: title" heading, and
  the task's paragraph in the Licence section ("`task`: ...", its first line-wrapped paragraph)."""
  titles = dict(re.findall(r"^## `([^`]+)`: (.+)$", markdown, re.M))
  _, _, licences = markdown.partition("\n## Licence")
  paragraphs = [" ".join(p.split()) for p in licences.split("\n\n")]
  texts = dict(m.groups() for p in paragraphs if (m := re.match(r"`([^`]+)`: (.+)", p)))
  return {name: {"title": title, "licence": texts.get(name, "").rstrip(":")}
          for name, title in titles.items()}


def licence_id(text: str) -> str | None:
  """The Hub identifier of the licence a SOURCES.md entry names first for the contents, not for
  the database or the package's code (which the entries name too)."""
  rest = text[max(text.find("contents"), 0):]
  found = [(m.start(), ident) for pattern, ident in LICENCE_IDS
           if (m := re.search(pattern, rest))]
  return min(found)[1] if found else None


def language(markdown: str) -> str | None:
  """The language code that a SOURCES.md file's opening paragraph (the one under its title)
  names, if it names one."""
  opening = (markdown.strip().split("\n\n") + [""])[1]
  return next((code for word, code in LANGUAGES.items() if re.search(rf"\b{word}\b", opening)),
              None)


def task_parts(spec: str) -> list[Part]:
  """The parts of a finetune.task spec ("sentiment", "sentiment+spam", "glue:DIR", "file:...")."""
  shipped = labelled_tasks(
      (importlib_resources.files("jaxbert.data.labelled") / "SOURCES.md").read_text("utf-8"))
  return [Part(p, f"{shipped[p]['title']}, shipped with jaxbert", shipped[p]["licence"])
          if p in shipped else Part(p) for p in spec.split("+")]


def corpus_parts(sources) -> list[Part]:
  """The parts of data.sources: the embedded corpus's files, a task's texts, a user's files."""
  text = pathlib.Path(corpus.DIR, "SOURCES.md").read_text("utf-8")
  files, lang = embedded_files(text), language(text)
  parts = []
  for spec in sources_lib.as_list(sources):
    if spec == "embedded":
      parts += [Part(f"embedded/{name}", row.get("original work", ""), row.get("licence", ""),
                     lang) for name in corpus.FILES for row in [files.get(name, {})]]
    elif spec.startswith("task:"):
      parts += [p._replace(name=f"task:{p.name}") for p in task_parts(spec[5:])]
    else:
      parts.append(Part(spec))
  return parts
