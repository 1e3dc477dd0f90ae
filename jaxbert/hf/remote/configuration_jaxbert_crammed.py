"""The configuration of jaxbert's crammed BERT in transformers (see modeling_jaxbert_crammed.py)."""
from transformers import PretrainedConfig


class JaxbertCrammedConfig(PretrainedConfig):
  """A pre-LN BERT without biases, with a GELU-GLU feed-forward and scaled sinusoidal positions.

  intermediate_size is the GLU's input width: the feed-forward's output layer reads half of it.
  classifier_pooling is what a sequence classifier reads: "mean" over the text's tokens, or
  "first", the [CLS] position.
  """
  model_type = "jaxbert-crammed"

  def __init__(self, vocab_size=32768, hidden_size=768, num_hidden_layers=16,
               num_attention_heads=12, intermediate_size=3072, max_position_embeddings=128,
               layer_norm_eps=1e-12, initializer_range=0.02, hidden_dropout_prob=0.1,
               classifier_pooling="first", pad_token_id=0, **kwargs):
    super().__init__(pad_token_id=pad_token_id, **kwargs)
    self.vocab_size, self.hidden_size = vocab_size, hidden_size
    self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
    self.intermediate_size = intermediate_size
    self.max_position_embeddings = max_position_embeddings
    self.layer_norm_eps, self.initializer_range = layer_norm_eps, initializer_range
    self.hidden_dropout_prob, self.classifier_pooling = hidden_dropout_prob, classifier_pooling
