"""Hugging Face in and out: BERT's classes for the original arch, our PyTorch code for the crammed.

  load(HFDIR)                 config.json + model.safetensors (or pytorch_model.bin) + vocabulary
                              -> ModelConfig, params, tokenizer; for evaluation and fine-tuning
  export(WORKDIR, OUT)        a workdir's checkpoint -> a directory that transformers'
                              BertForMaskedLM and AutoTokenizer load (crammed arch: see below)
  export_classifier(DIR, OUT) a saved classifier (original arch, [CLS] pooling) -> a directory
                              that AutoModelForSequenceClassification loads, with its labels

The two architectures map one-to-one except in three places, each handled exactly:
- Token types. jaxbert feeds one segment, so every token gets type 0. Import adds the type-0 row
  to every position row (the input sum is unchanged, the word table stays the tied decoder);
  export writes a zero type table. Type-1 rows and sentence pairs are not imported. The pooler
  (BertForPreTraining checkpoints, as Google's BERTs are, hold one; BertForMaskedLM none) is
  kept apart from the MLM params, as `Imported.pooler` and an imported workdir's
  pooler.safetensors, for [CLS]-pooled fine-tuning to start from.
- Special ids. jaxbert's data code fixes [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4; Hugging Face
  vocabularies put them anywhere (BERT's at 0, 100-103). Import moves those five to the front and
  keeps every other token in order, permuting the embedding rows and decoder bias to match;
  `Imported.source_ids` maps each new id back to the checkpoint's.
- Layouts. A torch Linear weight is [out, in], a flax kernel [in, out]: transposed both ways.

The crammed arch (pre-LN, no biases, GLU, sinusoidal positions) has no class in transformers: its
export carries one, remote/configuration_jaxbert_crammed.py and remote/modeling_jaxbert_crammed.py
(PyTorch), with a config.json ("model_type": "jaxbert-crammed") whose auto_map points the Auto
classes at them, for trust_remote_code=True; `load` reads it back, and the older exports under
jaxbert's own tensor names.

Safetensors are read and written with the safetensors library's numpy API, so neither import nor
export needs torch; only a pytorch_model.bin does.

  names.py    the name maps (BERT's and the crammed PyTorch model's), jaxbert's flat names
  remote/     the crammed arch's PyTorch code, copied into each crammed export
  reading.py  load, import_workdir
  writing.py  export, export_params
"""

from .names import CRAMMED_TYPE, SPECIAL_TOKENS, flatten, name_map, unflatten
from .reading import Imported, import_workdir, load
from .writing import export, export_classifier, export_params, hf_config

__all__ = ["CRAMMED_TYPE", "SPECIAL_TOKENS", "flatten", "name_map", "unflatten", "Imported",
           "import_workdir", "load", "export", "export_classifier", "export_params", "hf_config"]
