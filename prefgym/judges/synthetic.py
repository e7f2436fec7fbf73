"""Rule-based judges whose preferences are known exactly.

These are the text counterparts of :mod:`prefgym.preferences`: every probability
is a closed form of the replies, so tests and benchmarks can compute true win
rates and Nash equilibria of a language game and compare a learner against them.

Judges
------
- :class:`FeatureRaterJudge`: a population of Bradley-Terry raters, each valuing
  its own weighting of cheap reply features (length, politeness, questions,
  digits, ...). One rater is transitive; a population can be cyclic in aggregate
  (:meth:`FeatureRaterJudge.condorcet`), which is the case NLHF is built for.
- :class:`TableJudge`: an explicit preference over a finite set of replies.
  :meth:`TableJudge.from_preference` turns any matrix game into a text game with
  the same preference matrix, hence the same Nash equilibria.

Exact and sampled win rates
---------------------------
:func:`exact_win_rate` computes ``P(pi > pi')`` by enumerating two finite reply
distributions (one batched judge call); :func:`sampled_win_rate` estimates a win
rate from Bernoulli outcomes, with its standard error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
from scipy.special import expit

from prefgym.judges.base import JudgeOutputError, PairwiseJudge
from prefgym.preferences import (
    BradleyTerry,
    PopulationMixture,
    PreferenceModel,
    TabularPreference,
    validate_preference_matrix,
)

__all__ = [
    "FEATURES",
    "REFERENCE_MARKER",
    "FeatureRaterJudge",
    "TableJudge",
    "WinRateEstimate",
    "exact_win_rate",
    "sampled_win_rate",
    "feature_length",
    "feature_distinct_words",
    "feature_diversity",
    "feature_politeness",
    "feature_questions",
    "feature_digits",
    "feature_answer_match",
]

FeatureFn = Callable[[str, str], float]

_WORD = re.compile(r"[A-Za-z0-9']+")
_POLITE = frozenset({"please", "thank", "thanks", "thankyou"})
REFERENCE_MARKER = "Reference:"
"""A context that contains ``"Reference: <answer>"`` carries a reference answer
for :func:`feature_answer_match` (the text after the *last* marker, stripped)."""


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


# ----------------------------------------------------------------------------- built-in features
def feature_length(context: str, reply: str) -> float:
    """Length of the reply in whitespace-separated words, divided by 10."""
    return len(reply.split()) / 10.0


def feature_distinct_words(context: str, reply: str) -> float:
    """Number of distinct (lower-cased, alphanumeric) words in the reply, divided by 10."""
    return len(set(_words(reply))) / 10.0


def feature_diversity(context: str, reply: str) -> float:
    """Type-token ratio of the reply: distinct words / words, in ``[0, 1]`` (0 for no words)."""
    w = _words(reply)
    return len(set(w)) / len(w) if w else 0.0


def feature_politeness(context: str, reply: str) -> float:
    """Number of polite words in the reply: ``please``, ``thank``, ``thanks`` (any case)."""
    return float(sum(w in _POLITE for w in _words(reply)))


def feature_questions(context: str, reply: str) -> float:
    """Number of question marks in the reply."""
    return float(reply.count("?"))


def feature_digits(context: str, reply: str) -> float:
    """Number of whitespace-separated tokens of the reply that contain a digit (``"12"``, ``"7."``)."""
    return float(sum(any(ch.isdigit() for ch in tok) for tok in reply.split()))


def feature_answer_match(context: str, reply: str) -> float:
    """1.0 if the reply's last word equals the context's reference answer, else 0.0.

    The reference is the text after the last ``"Reference:"`` in the context
    (:data:`REFERENCE_MARKER`); both sides are compared lower-cased with
    punctuation stripped. A context with no reference gives 0.0 for every reply.
    """
    k = context.rfind(REFERENCE_MARKER)
    if k < 0:
        return 0.0
    ref = _words(context[k + len(REFERENCE_MARKER):])
    got = _words(reply)
    return float(bool(ref) and bool(got) and got[-1] == " ".join(ref))


FEATURES: dict[str, FeatureFn] = {
    "length": feature_length,
    "distinct_words": feature_distinct_words,
    "diversity": feature_diversity,
    "politeness": feature_politeness,
    "questions": feature_questions,
    "digits": feature_digits,
    "answer_match": feature_answer_match,
}
"""Built-in feature functions ``f(context, reply) -> float``, by name."""


# ----------------------------------------------------------------------------- FeatureRaterJudge
class FeatureRaterJudge(PairwiseJudge):
    """A population of Bradley-Terry raters over features of a reply.

    Rater ``j`` scores a reply by ``r_j(c, y) = w_j . phi(c, y)`` and prefers
    ``a`` to ``b`` with probability ``sigmoid((r_j(c, a) - r_j(c, b)) / T)``; the
    judge draws a rater from ``population``, so

        P(a > b | c) = sum_j population_j * sigmoid((r_j(c, a) - r_j(c, b)) / T).

    One rater is transitive; a mixture of raters who value different features
    need not be (see :meth:`condorcet`).

    Parameters
    ----------
    features
        Either a sequence whose entries are names in :data:`FEATURES` or
        callables ``f(context, reply) -> float`` (one per feature dimension), or a
        single callable ``phi(context, reply) -> array (d,)``.
    rater_weights
        ``(k_raters, d)`` weights (a 1-D ``(d,)`` array is one rater).
    population
        ``(k_raters,)`` non-negative weights summing to 1; uniform by default.
    temperature
        Bradley-Terry temperature ``T > 0``.

    Examples
    --------
    >>> judge = FeatureRaterJudge(["length"], [[1.0]], temperature=0.1)
    >>> float(judge.prob("hi", ["two words"], ["one"])[0])  # sigmoid(1)
    0.7310585786300049
    """

    def __init__(
        self,
        features: Sequence[str | FeatureFn] | Callable[[str, str], np.ndarray],
        rater_weights: np.ndarray | Sequence[Sequence[float]] | Sequence[float],
        population: Sequence[float] | np.ndarray | None = None,
        temperature: float = 1.0,
    ):
        W = np.asarray(rater_weights, dtype=np.float64)
        if W.ndim == 1:
            W = W[None, :]
        if W.ndim != 2 or W.size == 0:
            raise ValueError(f"rater_weights must be (k_raters, d); got shape {W.shape}")
        if not np.all(np.isfinite(W)):
            raise ValueError("rater_weights must be finite")
        if callable(features) and not isinstance(features, str):
            self._phi: Callable[[str, str], np.ndarray] | None = features
            self._fns: list[FeatureFn] = []
            self.feature_names = [f"phi[{i}]" for i in range(W.shape[1])]
        else:
            if isinstance(features, str):
                features = [features]
            fns, names = [], []
            for f in features:
                if isinstance(f, str):
                    if f not in FEATURES:
                        raise ValueError(f"unknown feature {f!r}; built-in features are {sorted(FEATURES)}")
                    fns.append(FEATURES[f])
                    names.append(f)
                elif callable(f):
                    fns.append(f)
                    names.append(getattr(f, "__name__", repr(f)))
                else:
                    raise ValueError(f"a feature must be a name or a callable (context, reply) -> float; "
                                     f"got {f!r}")
            if not fns:
                raise ValueError("a FeatureRaterJudge needs at least one feature")
            if len(fns) != W.shape[1]:
                raise ValueError(f"{len(fns)} features but rater_weights has d = {W.shape[1]} columns")
            self._phi, self._fns, self.feature_names = None, fns, names
        k = W.shape[0]
        pop = np.full(k, 1.0 / k) if population is None else np.asarray(population, dtype=np.float64)
        valid = pop.shape == (k,) and np.all(np.isfinite(pop)) and np.all(pop >= 0)
        if not (valid and np.isclose(pop.sum(), 1)):
            raise ValueError(f"population must be {k} non-negative numbers summing to 1; got {pop}")
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.rater_weights, self.population, self.temperature = W, pop, float(temperature)

    @property
    def n_raters(self) -> int:
        return int(self.rater_weights.shape[0])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(features={self.feature_names}, n_raters={self.n_raters}, "
                f"temperature={self.temperature:g})")

    # ------------------------------------------------------------------ features and rewards
    def features(self, contexts: Sequence[str] | str, replies: Sequence[str]) -> np.ndarray:
        """``phi(context_i, reply_i)``, shape ``(n, d)``.

        Raises
        ------
        JudgeOutputError
            If a feature is NaN or infinite, or a vector feature map has the wrong shape.
        """
        replies = list(replies)
        ctx = [contexts] * len(replies) if isinstance(contexts, str) else list(contexts)
        if len(ctx) != len(replies):
            raise ValueError(f"contexts and replies must have equal lengths; got {len(ctx)} and "
                             f"{len(replies)}")
        index: dict[tuple[str, str], int] = {}  # each distinct (context, reply) is featurised once
        inverse = np.array([index.setdefault(k, len(index)) for k in zip(ctx, replies, strict=True)],
                           dtype=np.int64)
        pairs = list(index)
        d = self.rater_weights.shape[1]
        if self._phi is not None:
            rows = [np.asarray(self._phi(c, y), dtype=np.float64).reshape(-1) for c, y in pairs]
            bad = next((i for i, r in enumerate(rows) if r.shape != (d,)), None)
            if bad is not None:
                raise JudgeOutputError(f"feature map returned shape {rows[bad].shape} for reply "
                                       f"{pairs[bad][1][:40]!r}; expected ({d},) to match rater_weights")
            F = np.stack(rows) if rows else np.zeros((0, d))
        else:
            F = np.array([[f(c, y) for f in self._fns] for c, y in pairs], dtype=np.float64)
            F = F.reshape(len(pairs), d)
        bad = np.argwhere(~np.isfinite(F))
        if bad.size:
            i, k = (int(v) for v in bad[0])
            raise JudgeOutputError(f"feature {self.feature_names[k]!r} = {float(F[i, k])!r} for reply "
                                   f"{pairs[i][1][:40]!r}; features must be finite")
        return F[inverse] if len(replies) else F

    def rewards(self, contexts: Sequence[str] | str, replies: Sequence[str]) -> np.ndarray:
        """Every rater's reward ``r_j(context_i, reply_i)``, shape ``(n, k_raters)``."""
        return self.features(contexts, replies) @ self.rater_weights.T

    def _prob(self, contexts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        n = len(responses_a)
        r = self.rewards(contexts + contexts, responses_a + responses_b)
        return expit((r[:n] - r[n:]) / self.temperature) @ self.population

    def preference_model(self, context: str, replies: Sequence[str]) -> PopulationMixture:
        """The exact :class:`~prefgym.preferences.PopulationMixture` over ``replies`` for ``context``.

        Item ``i`` is ``replies[i]``; feed it to
        :class:`~prefgym.games.matrix.MatrixGame` for Nash equilibria.
        """
        return PopulationMixture.from_features(
            self.features(context, replies), self.rater_weights, self.population, self.temperature
        )

    # ------------------------------------------------------------------ ready-made judges
    @classmethod
    def length_lover(cls, temperature: float = 0.1) -> FeatureRaterJudge:
        """One transitive rater: Bradley-Terry on length (``feature_length`` = words / 10).

        With the default ``temperature=0.1`` each extra word adds 1 to the log-odds.
        """
        return cls(["length"], [[1.0]], temperature=temperature)

    CONDORCET_REPLIES: tuple[str, str, str] = (
        "Thank you, please ask again?",
        "Please note: 12 and 7.",
        "Is it 4? Are you sure?",
    )
    """The candidate replies A, B, C of :meth:`condorcet`."""

    @classmethod
    def condorcet(cls, temperature: float = 0.25) -> FeatureRaterJudge:
        """Three raters valuing three features; cyclic in aggregate on three replies.

        Raters (equal weight) value, respectively, politeness
        (:func:`feature_politeness`), digits (:func:`feature_digits`) and
        questions (:func:`feature_questions`). On the candidates
        :attr:`CONDORCET_REPLIES`

            reply                              politeness  digits  questions
        A   "Thank you, please ask again?"         2          0        1
        B   "Please note: 12 and 7."               1          2        0
        C   "Is it 4? Are you sure?"               0          1        2

        the raters rank A>B>C, B>C>A and C>A>B, a Latin square, so

            P(A > B) = P(B > C) = P(C > A) = (2 sigmoid(1/T) + sigmoid(-2/T)) / 3 > 1/2,

        (about 0.655 at ``T = 0.25``): A beats B beats C beats A, like
        :meth:`prefgym.preferences.PopulationMixture.condorcet`. The win matrix is
        circulant, so the unique Nash equilibrium over the three replies is uniform.
        """
        return cls(["politeness", "digits", "questions"], np.eye(3), temperature=temperature)


# ----------------------------------------------------------------------------- TableJudge
class TableJudge(PairwiseJudge):
    """An exact preference over a finite set of replies (the same for every context).

    Two forms:

    - ``TableJudge({"reply": reward, ...}, temperature=T)``: Bradley-Terry on the
      given rewards;
    - ``TableJudge(replies, preference)``: ``preference`` is an ``(n, n)``
      preference matrix or a :class:`~prefgym.preferences.PreferenceModel` over
      ``n`` items, item ``i`` being ``replies[i]``.

    A reply outside the set is a ``ValueError`` (never a default score).

    Parameters
    ----------
    table
        A mapping reply -> reward, or the sequence of replies.
    preference
        The matrix or model (only with a sequence of replies).
    temperature
        Bradley-Terry temperature (only with a mapping of rewards).
    normalize
        Optional map applied to every reply before lookup (e.g. ``str.strip``);
        the table's replies are normalised with it too.
    """

    def __init__(
        self,
        table: Mapping[str, float] | Sequence[str],
        preference: PreferenceModel | np.ndarray | Sequence[Sequence[float]] | None = None,
        *,
        temperature: float = 1.0,
        normalize: Callable[[str], str] | None = None,
    ):
        if isinstance(table, Mapping):
            if preference is not None:
                raise ValueError("pass either a mapping of rewards or (replies, preference), not both")
            replies = list(table)
            model: PreferenceModel = BradleyTerry([float(v) for v in table.values()], temperature)
        else:
            if isinstance(table, str):
                raise ValueError("replies must be a sequence of strings, not one string")
            replies = list(table)
            if preference is None:
                raise ValueError("TableJudge(replies, preference) needs a preference matrix or model")
            model = preference if isinstance(preference, PreferenceModel) and not isinstance(
                preference, np.ndarray) else TabularPreference(preference)
        bad = next((i for i, r in enumerate(replies) if not isinstance(r, str)), None)
        if bad is not None:
            raise ValueError(f"replies[{bad}] must be a string; got {type(replies[bad]).__name__}")
        self.normalize = normalize
        keys = [normalize(r) for r in replies] if normalize else replies
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"reply {dup!r} appears more than once in the table")
        if not keys:
            raise ValueError("a TableJudge needs at least one reply")
        P = validate_preference_matrix(np.asarray(model.matrix(), dtype=np.float64))
        if P.shape != (len(keys), len(keys)):
            raise ValueError(f"{len(keys)} replies but the preference is over {P.shape[-1]} items")
        self.replies, self.model, self._P = list(replies), model, P
        self._index = {k: i for i, k in enumerate(keys)}

    @classmethod
    def from_preference(cls, model: PreferenceModel | np.ndarray, replies: Sequence[str],
                        **kwargs) -> TableJudge:
        """The text game over ``replies`` with ``model``'s preference (item ``i`` = ``replies[i]``).

        ``judge.win_matrix(c, replies)`` equals ``model.matrix()`` for every
        context, so the text game has the model's Nash equilibria.
        """
        return cls(list(replies), model, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_replies={len(self.replies)})"

    def index(self, replies: Sequence[str]) -> np.ndarray:
        """Item indices of ``replies``; a ``ValueError`` names any reply outside the table."""
        out = np.empty(len(replies), dtype=np.int64)
        for i, r in enumerate(replies):
            key = self.normalize(r) if self.normalize else r
            j = self._index.get(key)
            if j is None:
                shown = ", ".join(repr(x[:30]) for x in self.replies[:5])
                more = ", ..." if len(self.replies) > 5 else ""
                raise ValueError(f"reply {r[:60]!r} (position {i}) is not in this TableJudge's "
                                 f"{len(self.replies)} replies [{shown}{more}]")
            out[i] = j
        return out

    def matrix(self) -> np.ndarray:
        """The ``(n, n)`` preference matrix over :attr:`replies`."""
        return self._P.copy()

    def _prob(self, contexts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        return self._P[self.index(responses_a), self.index(responses_b)]


# ----------------------------------------------------------------------------- win rates
def _as_distribution(policy, name: str) -> tuple[list[str], np.ndarray]:
    if isinstance(policy, Mapping):
        replies, probs = list(policy.keys()), list(policy.values())
    else:
        try:
            replies, probs = policy
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a dict reply -> probability or a pair (replies, probs)"
                             ) from None
        replies = [replies] if isinstance(replies, str) else list(replies)
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(replies) != p.size or p.size == 0:
        raise ValueError(f"{name}: {len(replies)} replies but {p.size} probabilities (need >= 1 of each)")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-8):
        raise ValueError(f"{name} probabilities must be non-negative and sum to 1; got {p}")
    bad = next((i for i, r in enumerate(replies) if not isinstance(r, str)), None)
    if bad is not None:
        raise ValueError(f"{name} reply {bad} must be a string; got {type(replies[bad]).__name__}")
    return replies, p


def exact_win_rate(
    judge: PairwiseJudge,
    context: str,
    policy: Mapping[str, float] | tuple[Sequence[str], Sequence[float]],
    opponent: Mapping[str, float] | tuple[Sequence[str], Sequence[float]],
) -> float:
    """``P(pi > pi' | context) = sum_{a, b} pi(a) pi'(b) P(a > b | context)``, exactly.

    Both policies are finite distributions over replies: a dict reply ->
    probability, or a pair ``(replies, probs)``. The ``m x n`` pairs are scored
    in one batched judge call (zero-probability replies are skipped).
    """
    if not isinstance(context, str):
        raise ValueError(f"context must be a string; got {type(context).__name__}")
    ra, pa = _as_distribution(policy, "policy")
    rb, pb = _as_distribution(opponent, "opponent")
    ia, ib = np.flatnonzero(pa > 0), np.flatnonzero(pb > 0)
    I, J = np.meshgrid(ia, ib, indexing="ij")
    I, J = I.ravel(), J.ravel()
    P = judge.prob(context, [ra[i] for i in I], [rb[j] for j in J])
    return float(np.sum(pa[I] * pb[J] * P))


class WinRateEstimate(NamedTuple):
    """A Monte Carlo win rate: ``mean``, its standard error and the number of comparisons."""

    mean: float
    stderr: float
    n: int


def sampled_win_rate(
    judge: PairwiseJudge,
    context: str | Sequence[str],
    replies_a: Sequence[str],
    replies_b: Sequence[str],
    rng: np.random.Generator,
    bernoulli: bool = True,
) -> WinRateEstimate:
    """Estimate ``P(pi > pi')`` from paired samples ``replies_a[i] ~ pi``, ``replies_b[i] ~ pi'``.

    With ``bernoulli=True`` (a human rater's view) each comparison is a 0/1
    outcome drawn by :meth:`PairwiseJudge.sample`; otherwise the judge's
    probabilities are averaged (lower variance, same mean). The standard error is
    the sample standard deviation over ``sqrt(n)``.
    """
    a, b = list(replies_a), list(replies_b)
    if len(a) != len(b) or not a:
        raise ValueError(f"need equal, non-zero numbers of replies; got {len(a)} and {len(b)}")
    x = judge.sample(context, a, b, rng) if bernoulli else judge.prob(context, a, b)
    n = x.size
    se = float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return WinRateEstimate(float(x.mean()), se, int(n))
