"""A Bradley-Terry judge from any scalar reward, and the transformers plumbing judges share.

:class:`RewardModelJudge` turns a reward ``r(context, reply)`` into a preference

    P(a > b | c) = sigmoid((r(c, a) - r(c, b)) / temperature),

the text counterpart of :class:`prefgym.preferences.BradleyTerry`. The reward is
a Python callable or a ``transformers`` sequence classifier with one label.

Inputs longer than the model's maximum length are an error unless the caller
asks for truncation: a silently truncated reply is a wrong reward.

The module also provides the small tokenizer/model builders used by tests and
examples (:func:`build_word_tokenizer`, :func:`tiny_sequence_classifier`); they
build everything from configs and never download.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from prefgym.judges.base import JudgeOutputError, PairwiseJudge

__all__ = ["RewardModelJudge", "build_word_tokenizer", "tiny_sequence_classifier"]

RewardFn = Callable[[list[str], list[str]], np.ndarray]
JUDGE_CONFIG = "prefgym_judge.json"
_HUGE = 1_000_000  # tokenizers report "no limit" as a huge model_max_length

DEFAULT_CORPUS: tuple[str, ...] = (
    "the a an and or but if then so because of to in on at by for with from about as into over under",
    "i you he she it we they me him her us them my your his its our their this that these those",
    "is are was were be been being am do does did have has had will would can could should may might must",
    "yes no not very more most less some any all each every many much few one two three four five six seven",
    "eight nine ten zero 0 1 2 3 4 5 6 7 8 9 10 11 12 100",
    "what why how when where who which tell me describe explain answer question reply story",
    "please thank thanks",
    "good bad big small red blue green cat dog sat ran on mat log sun moon day night time way thing people",
    "hello hi sorry sure okay well also just like know think say see go get make give take",
    "come want look use",
    ". , ? ! : ; ' \" ( ) - + = * / [ ] User Assistant Reference",
)
"""A small built-in corpus: a few hundred frequent English words, digits and punctuation."""


# ----------------------------------------------------------------------------- builders
def build_word_tokenizer(
    corpus: Iterable[str] | None = None,
    model_max_length: int = 128,
    lowercase: bool = True,
):
    """A word-level ``transformers`` fast tokenizer trained on the fly with ``tokenizers``.

    Words and punctuation are split by the ``Whitespace`` pre-tokenizer; the
    vocabulary is every token of ``corpus`` (default :data:`DEFAULT_CORPUS`)
    plus ``[PAD] [UNK] [CLS] [SEP] [MASK]``; unseen words map to ``[UNK]``. A
    single text is encoded as ``[CLS] ... [SEP]``, so a literal ``[SEP]`` in a
    text is one separator token. Deterministic (sorted by frequency, then token).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = list(DEFAULT_CORPUS if corpus is None else corpus)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("corpus must be a non-empty iterable of strings")
    trainer = trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1)
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=int(model_max_length),
    )


def tiny_sequence_classifier(
    tokenizer,
    arch: str = "bert",
    hidden_size: int = 32,
    num_layers: int = 1,
    num_heads: int = 2,
    max_length: int | None = None,
    seed: int = 0,
):
    """A tiny ``AutoModelForSequenceClassification`` with one output (a score), built from a config.

    Parameters
    ----------
    tokenizer
        Supplies the vocabulary size and pad token.
    arch
        ``"bert"`` (encoder, ``[CLS]`` pooling) or ``"gpt2"`` (decoder, last-token pooling).
    max_length
        Position embeddings; defaults to the tokenizer's ``model_max_length``.
    seed
        Initialisation seed (the global torch RNG is left untouched).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig, GPT2Config

    n_pos = int(max_length or tokenizer.model_max_length)
    if n_pos >= _HUGE:
        raise ValueError("pass max_length: the tokenizer has no model_max_length")
    common = dict(vocab_size=len(tokenizer), num_labels=1, pad_token_id=tokenizer.pad_token_id)
    if arch == "bert":
        cfg = BertConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
                         intermediate_size=2 * hidden_size, max_position_embeddings=n_pos,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **common)
    elif arch == "gpt2":
        cfg = GPT2Config(n_embd=hidden_size, n_layer=num_layers, n_head=num_heads, n_positions=n_pos,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **common)
    else:
        raise ValueError(f"arch must be 'bert' or 'gpt2'; got {arch!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(cfg)
    return model.eval()


# ----------------------------------------------------------------------------- shared plumbing
@contextlib.contextmanager
def _eval_mode(model) -> Iterator[None]:
    """Evaluation mode and no autograd, restoring the model's training flag afterwards."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _prepare_pad_token(model, tokenizer) -> None:
    """Batched scoring needs a pad token; decoder tokenizers often lack one (use EOS, the HF idiom)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad token nor an EOS token to pad with; "
                             "set tokenizer.pad_token")
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def _check_single_score(model) -> None:
    n = getattr(model.config, "num_labels", None)
    if n != 1:
        raise ValueError(f"the model must be a sequence classifier with num_labels=1 (a scalar score); "
                         f"got num_labels={n}")


def _resolve_max_length(model, tokenizer, max_length: int | None) -> int | None:
    if max_length is not None:
        if int(max_length) < 1:
            raise ValueError(f"max_length must be a positive integer; got {max_length}")
        return int(max_length)
    limits = []
    tml = getattr(tokenizer, "model_max_length", None)
    if tml is not None and tml < _HUGE:
        limits.append(int(tml))
    mpe = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if mpe:
        limits.append(int(mpe))
    return min(limits) if limits else None


def _model_device(model, device):
    import torch

    if device is not None:
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


class _HFScorer:
    """Batched scalar scores of texts by a one-label sequence classifier, with a length policy."""

    def __init__(self, model, tokenizer, batch_size: int, max_length: int | None, truncation: bool,
                 device=None):
        if tokenizer is None:
            raise ValueError("a transformers model needs its tokenizer")
        _check_single_score(model)
        _prepare_pad_token(model, tokenizer)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.truncation = int(batch_size), bool(truncation)
        self.max_length = _resolve_max_length(model, tokenizer, max_length)
        self.device = _model_device(model, device)

    def encode(self, texts: list[str]):
        """Tokenise ``texts`` (padded tensors); an over-long text is a ``ValueError`` unless truncating.

        Padding is always on the right, whatever the tokenizer's ``padding_side``: a
        sequence classifier reads the last non-pad token, and with left padding GPT-2
        style models would shift position ids and make a score depend on its batch.
        """
        if self.truncation:
            if self.max_length is None:
                raise ValueError("truncation=True needs a max_length (the model and tokenizer give none)")
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt", padding_side="right")
        else:
            enc = self.tokenizer(texts, padding=True, truncation=False, return_tensors="pt",
                                 padding_side="right")
            if self.max_length is not None:
                lengths = enc["attention_mask"].sum(dim=1)
                over = (lengths > self.max_length).nonzero()
                if over.numel():
                    i = int(over[0, 0])
                    raise ValueError(
                        f"input {i} is {int(lengths[i])} tokens long, over the model's max length "
                        f"{self.max_length} (text starts {texts[i][:80]!r}); shorten it or pass "
                        f"truncation=True to cut it (the tokenizer's truncation_side decides which end)"
                    )
        return {k: v.to(self.device) for k, v in enc.items()}

    def logits(self, texts: list[str]):
        """Scores of ``texts`` as a float torch tensor ``(n,)`` (with autograd if enabled)."""
        import torch

        out = []
        for s in range(0, len(texts), self.batch_size):
            enc = self.encode(texts[s:s + self.batch_size])
            out.append(self.model(**enc).logits.reshape(-1).float())
        return torch.cat(out) if out else torch.zeros(0, device=self.device)

    def scores(self, texts: list[str]) -> np.ndarray:
        """Scores of the unique texts in ``texts``, float64 ``(n,)``, without autograd."""
        uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        with _eval_mode(self.model):
            s = self.logits(list(uniq)).double().cpu().numpy()
        return s[inverse.reshape(-1)]


def _unique_pairs(contexts: Sequence[str], replies: Sequence[str]
                  ) -> tuple[list[tuple[str, str]], np.ndarray]:
    index: dict[tuple[str, str], int] = {}
    keys = zip(contexts, replies, strict=True)
    inverse = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(replies))
    return list(index), inverse


def _write_judge_config(path: str | os.PathLike, config: dict[str, Any]) -> None:
    with open(os.path.join(path, JUDGE_CONFIG), "w") as f:
        json.dump(config, f, indent=2)


def _read_judge_config(path: str | os.PathLike, cls_name: str) -> dict[str, Any]:
    file = os.path.join(path, JUDGE_CONFIG)
    if not os.path.isfile(file):
        return {}
    with open(file) as f:
        cfg = json.load(f)
    saved = cfg.pop("class", cls_name)
    if saved != cls_name:
        raise ValueError(f"{path} holds a {saved}, not a {cls_name}")
    return cfg


# ----------------------------------------------------------------------------- the judge
class RewardModelJudge(PairwiseJudge):
    """Bradley-Terry from a scalar reward: ``P(a > b | c) = sigmoid((r(c, a) - r(c, b)) / temperature)``.

    Parameters
    ----------
    reward
        Either a callable ``reward(contexts: list[str], replies: list[str]) -> (n,)``
        (deterministic: each distinct ``(context, reply)`` of a batch is scored
        once), or a ``transformers`` sequence classifier with ``num_labels=1``,
        scoring the text ``template.format(context=..., reply=...)``.
    tokenizer
        The model's tokenizer (required for a model, unused for a callable).
        Without a pad token, its EOS token is used for padding.
    temperature
        ``T > 0``.
    batch_size
        Texts per forward pass (model only).
    max_length
        Token limit; defaults to the smaller of the tokenizer's
        ``model_max_length`` and the model's position embeddings.
    truncation
        If ``False`` (default) a longer input raises ``ValueError``; if ``True``
        it is truncated to ``max_length``.
    template
        How a context and reply become one text (model only).
    device
        Where inputs go; defaults to the model's device.

    Raises
    ------
    JudgeOutputError
        If the reward is NaN or infinite, or has the wrong shape (from :meth:`prob`).
    """

    def __init__(
        self,
        reward: RewardFn | Any,
        tokenizer=None,
        *,
        temperature: float = 1.0,
        batch_size: int = 32,
        max_length: int | None = None,
        truncation: bool = False,
        template: str = "{context}\n{reply}",
        device=None,
    ):
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.temperature, self.template = float(temperature), template
        try:
            template.format(context="", reply="")
        except (KeyError, IndexError, AttributeError) as e:
            raise ValueError(f"template must be a format string with {{context}} and {{reply}}; got "
                             f"{template!r}") from e
        self._scorer: _HFScorer | None = None
        if _is_torch_module(reward):
            self._scorer = _HFScorer(reward, tokenizer, batch_size, max_length, truncation, device)
            self.model, self.tokenizer = reward, tokenizer
            self._reward_fn: RewardFn | None = None
        elif callable(reward):
            self._reward_fn, self.model, self.tokenizer = reward, None, None
        else:
            raise ValueError(f"reward must be a callable (contexts, replies) -> rewards or a transformers "
                             f"sequence classifier; got {type(reward).__name__}")

    def __repr__(self) -> str:
        what = type(self.model).__name__ if self.model is not None else getattr(
            self._reward_fn, "__name__", "callable")
        return f"{type(self).__name__}({what}, temperature={self.temperature:g})"

    @property
    def max_length(self) -> int | None:
        return None if self._scorer is None else self._scorer.max_length

    def rewards(self, contexts: Sequence[str] | str, replies: Sequence[str]) -> np.ndarray:
        """``r(context_i, reply_i)``, float64 ``(n,)``; each distinct pair is scored once.

        Raises
        ------
        JudgeOutputError
            If a reward is not finite or the reward function returns the wrong shape.
        """
        replies = list(replies)
        ctx = [contexts] * len(replies) if isinstance(contexts, str) else list(contexts)
        if len(ctx) != len(replies):
            raise ValueError(f"contexts and replies must have equal lengths; got {len(ctx)} and "
                             f"{len(replies)}")
        if not replies:
            return np.zeros(0)
        uniq, inverse = _unique_pairs(ctx, replies)
        uc, ur = [c for c, _ in uniq], [r for _, r in uniq]
        if self._scorer is not None:
            r = self._scorer.scores([self.template.format(context=c, reply=y) for c, y in uniq])
        else:
            r = self._reward_fn(uc, ur)
            if hasattr(r, "detach"):
                r = r.detach().cpu().numpy()
            r = np.asarray(r, dtype=np.float64)
            if r.size != len(uniq):
                raise JudgeOutputError(f"reward function returned shape {r.shape} for {len(uniq)} replies; "
                                       f"expected ({len(uniq)},)")
            r = r.reshape(-1)
        bad = np.flatnonzero(~np.isfinite(r))
        if bad.size:
            i = int(bad[0])
            raise JudgeOutputError(f"reward {float(r[i])!r} for reply {ur[i][:60]!r} "
                                   f"(context {uc[i][:60]!r}); a reward must be finite")
        return r[inverse]

    def _prob(self, contexts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        n = len(responses_a)
        r = self.rewards(contexts + contexts, responses_a + responses_b)
        return expit((r[:n] - r[n:]) / self.temperature)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, temperature: float | None = None,
                        model_kwargs: dict | None = None, tokenizer_kwargs: dict | None = None,
                        **judge_kwargs) -> RewardModelJudge:
        """Load a one-label sequence classifier and its tokenizer (a hub id or a local folder).

        Judge settings saved by :meth:`save_pretrained` are restored; keyword
        arguments override them.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **(tokenizer_kwargs or {}))
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path, **(model_kwargs or {}))
        cfg = _read_judge_config(name_or_path, cls.__name__) if os.path.isdir(name_or_path) else {}
        if temperature is not None:
            cfg["temperature"] = temperature
        cfg.update(judge_kwargs)
        return cls(model, tokenizer, **cfg)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Save the model, tokenizer and judge settings (model-backed judges only)."""
        if self._scorer is None:
            raise ValueError("only a model-backed RewardModelJudge can be saved; a callable reward has "
                             "no weights")
        os.makedirs(path, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        _write_judge_config(path, {"class": type(self).__name__, "temperature": self.temperature,
                                   "template": self.template, "batch_size": self._scorer.batch_size,
                                   "max_length": self._scorer.max_length,
                                   "truncation": self._scorer.truncation})


def _is_torch_module(obj) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return isinstance(obj, torch.nn.Module)
