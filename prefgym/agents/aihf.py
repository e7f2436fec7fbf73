"""AIHF: joint reward and policy learning from demonstrations and preferences (004, Alg. 1).

The bilevel problem of 004 (Eq. 5): the upper level fits one reward
``R(s, a; theta)`` to both data sources,

    max_theta  w_1 L_1(pi_theta) + L_2(R(.; theta))                    (5a)

and the lower level is entropy-regularised RL on that reward (Eq. 7), here
SB3's SAC (004 A.2.1). Each outer iteration (Alg. 1):

1. *policy alignment*: ``sac_steps_per_iter`` SAC steps on the current reward,
   warm-started (the actor, critics and replay buffer persist across iterations);
2. *reward alignment*: ``reward_steps_per_iter`` Adam steps on the surrogate
   loss whose negative gradient is Eq. (19) (:func:`~prefgym.agents.aihf_estimator.aihf_loss`):

       loss = w_demo * H / beta * (mean_{(s,a) ~ pi} r - mean_{(s,a) ~ D^E} r)        (Eq. 18, Lemma 4.1)
            - w_pref * mean_P [ y log sig(dR / beta) + (1 - y) log sig(-dR / beta) ]   (Eq. 8, BTL)

   with ``dR = R(sigma_a) - R(sigma_b)``, ``R(sigma) = sum_t gamma^t r(s_t, a_t)`` over a
   segment of ``L`` steps, ``H = sum_{t < L} gamma^t`` and ``y`` the label ``P(a > b)``
   (soft labels allow the equal teacher's 1/2).

004's estimator by default (the choices 004 leaves open are ours):

- *Weights* ``|D|`` and ``|P|`` (Eq. 34), divided by ``|D| + |P|``: ``w_demo = |D| / (|D| + |P|)``,
  ``w_pref = |P| / (|D| + |P|)``, where ``|P|`` is the number of preference pairs and ``|D|``
  the number of ``L``-step demonstration segments (demonstration steps / ``L``).
- *One footing*: both terms are sums over an ``L``-step segment; the demonstration term is
  ``H`` times the per-step mean (``L`` = the preferences' segment length by default).
- *One temperature* ``beta`` = SAC's fixed entropy coefficient ``alpha`` (default 0.2): SAC's
  soft-optimal policy is ``pi ~ exp(Q / alpha)``, so the trajectory model the preference
  likelihood assumes is ``mu ~ exp(R / alpha)`` and Lemma 4.1's gradient carries ``1 / alpha``.
  (004 writes Eq. 8 with ``beta = 1``; ``temperature=1`` with ``ent_coef=1`` is that reading.)
- ``tau^A`` ~ ``pi^{k+1}``: the agent samples are the transitions SAC collected
  in the latest policy-alignment step (the newest ``agent_window`` of its
  replay buffer), so no extra environment steps are spent.
- The reward reaches SAC by *relabelling*: :class:`RewardRelabelingReplayBuffer`
  replaces the stored rewards of every sampled minibatch by ``R(s, a; theta)``
  (one batched forward pass under ``torch.no_grad`` per gradient step). Old
  transitions therefore always carry the current reward, and the environment
  steps at full speed: the environment keeps its true reward, so SB3's
  ``rollout/ep_rew_mean`` logs the *true* return. (:class:`~prefgym.envs.mujoco.
  LearnedRewardWrapper` is the per-step alternative for other learners.)

Special cases (004 sec. 3.3, the baselines of Fig. 5):

- ``mode="rlhf"`` (``w_1 = 0``): the reward model is fitted on preferences
  alone for ``reward_pretrain_steps`` steps (Eq. 3), then frozen while SAC trains
  on it (Eq. 4 with SAC's entropy in place of the KL to the SFT policy);
  ``bc_steps`` > 0 first behaviour-clones the SAC actor on the demonstrations
  (the BC-initialised RLHF of 004).
- ``mode="irl"``: preferences off, ML-IRL from demonstrations alone.
- ``mode="aihf"``: both terms, weights ``w_demo`` and ``w_pref`` (default Eq. 34's).

>>> agent = AIHF("Hopper-v5", demonstrations="prefgym/Hopper-v5/demos-v0",
...              preferences="hopper_prefs.npz", sac_steps_per_iter=5000)
>>> agent.learn(1_000_000, progress_bar=True)
>>> action, _ = agent.predict(obs, deterministic=True)
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback as SB3BaseCallback
from stable_baselines3.common.utils import configure_logger
from torch import nn
from tqdm.auto import tqdm

from prefgym.agents.aihf_estimator import aihf_loss, make_reward_optimizer, paper_weights
from prefgym.agents.base import BaseAgent, _check_hparam_types, check_timesteps
from prefgym.agents.callbacks import convert_callback
from prefgym.data.control import Episode, PreferencePairs, flatten_episodes, load_episodes
from prefgym.errors import AgentLoadError, InvalidArgumentError, UnsafeFileError
from prefgym.fileio import atomic_write
from prefgym.serialization import json_default

__all__ = ["AIHF", "DEFAULT_SAC_KWARGS", "RewardNet", "RewardRelabelingReplayBuffer", "aihf_loss",
           "learned_returns", "reward_rank_correlation"]

MODES = ("aihf", "rlhf", "irl")

#: 004 A.2.1 / ML-IRL: (64, 64) ReLU actor and critics, lr 3e-3, batch 100, fixed entropy 0.2
DEFAULT_SAC_KWARGS: dict[str, Any] = {
    "learning_rate": 3e-3,
    "batch_size": 100,
    "buffer_size": 1_000_000,
    "ent_coef": 0.2,
    "policy_kwargs": {"net_arch": [64, 64]},
}


# ------------------------------------------------------------------ reward network
class RewardNet(nn.Module):
    """``r(s, a; theta)``: an MLP on standardised observations and SAC-scaled actions in ``[-1, 1]``.

    Parameters
    ----------
    obs_dim, act_dim
        Input sizes (flattened).
    hidden_sizes
        Hidden widths (004: (64, 64)).
    activation
        ``"relu"`` (004), ``"tanh"`` or ``"elu"``.
    use_action
        Feed the action; False learns a state-only reward ``r(s)``.
    clamp_magnitude
        Outputs are clipped to ``[-c, c]`` (ML-IRL: 10); None leaves them free.
    output_activation
        None (linear output), ``"softplus"`` or ``"sigmoid"`` (non-negative rewards, which
        remove the incentive to end episodes early on tasks that terminate, e.g. Hopper;
        Kostrikov et al. 2019), or ``"tanh"``. Applied before the clamp.

    Notes
    -----
    The observation mean and scale are buffers, set from the training data by
    :meth:`set_normalization` and saved with the weights.
    """

    ACTIVATIONS: ClassVar[dict[str, type[nn.Module]]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}
    OUTPUTS: ClassVar[dict[str | None, Any]] = {None: None, "softplus": F.softplus, "sigmoid": torch.sigmoid,
                                                "tanh": torch.tanh}

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes=(64, 64), activation: str = "relu",
                 use_action: bool = True, clamp_magnitude: float | None = 10.0,
                 output_activation: str | None = None):
        super().__init__()
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(self.ACTIVATIONS)}; got {activation!r}")
        if output_activation not in self.OUTPUTS:
            raise ValueError(f"output_activation must be one of {list(self.OUTPUTS)}; "
                             f"got {output_activation!r}")
        self.output_activation = output_activation
        self.obs_dim, self.act_dim, self.use_action = int(obs_dim), int(act_dim), bool(use_action)
        self.clamp_magnitude = clamp_magnitude
        layers: list[nn.Module] = []
        width = self.obs_dim + (self.act_dim if use_action else 0)
        for h in hidden_sizes:
            layers += [nn.Linear(width, int(h)), self.ACTIVATIONS[activation]()]
            width = int(h)
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("obs_mean", torch.zeros(self.obs_dim))
        self.register_buffer("obs_scale", torch.ones(self.obs_dim))

    def set_normalization(self, observations: np.ndarray) -> None:
        """Standardise inputs with the mean and std of ``observations (N, obs_dim)`` (std floored at 1e-3)."""
        obs = np.asarray(observations, dtype=np.float64).reshape(-1, self.obs_dim)
        self.obs_mean.copy_(torch.as_tensor(obs.mean(0), dtype=torch.float32))
        self.obs_scale.copy_(torch.as_tensor(np.maximum(obs.std(0), 1e-3), dtype=torch.float32))

    def forward(self, obs: torch.Tensor, act: torch.Tensor | None = None) -> torch.Tensor:
        """Rewards of ``obs (..., obs_dim)`` and scaled ``act (..., act_dim)``, shape ``(...)``."""
        x = (obs.float() - self.obs_mean) / self.obs_scale
        if self.use_action:
            x = torch.cat([x, act.float()], dim=-1)
        r = self.mlp(x).squeeze(-1)
        if self.output_activation is not None:
            r = self.OUTPUTS[self.output_activation](r)
        if self.clamp_magnitude is not None:
            r = torch.clamp(r, -self.clamp_magnitude, self.clamp_magnitude)
        return r


class RewardRelabelingReplayBuffer(ReplayBuffer):
    """SB3 replay buffer whose sampled rewards are ``reward_fn(observations, actions)``.

    ``reward_fn`` takes the minibatch tensors (observations as stored, actions
    SAC-scaled to ``[-1, 1]``) and returns rewards ``(B,)``; it is called once per
    sampled batch under ``torch.no_grad``. With ``reward_fn = None`` the stored
    (true) rewards are returned.
    """

    reward_fn = None

    def _get_samples(self, batch_inds: np.ndarray, env=None):
        samples = super()._get_samples(batch_inds, env)
        if self.reward_fn is None:
            return samples
        with torch.no_grad():
            r = self.reward_fn(samples.observations, samples.actions).reshape(-1, 1)
        return samples._replace(rewards=r.to(samples.rewards.dtype))


# ------------------------------------------------------------------ callbacks
class _OuterCallback(SB3BaseCallback):
    """Forward the hooks of every inner ``SAC.learn`` call to the user's callback; drive the bar.

    The user's callback is initialised once per :meth:`AIHF.learn` with the AIHF agent as its
    ``model`` (its ``num_timesteps``, ``logger``, ``get_env()`` and ``save`` are AIHF's) and
    sees SAC's rollout locals (``dones``, ``infos``, ``rewards``, ...) through ``update_locals``.
    """

    def __init__(self, callback, bar: tqdm | None):
        super().__init__()
        self.callback, self.bar = callback, bar
        self.stopped = False
        self._last = None

    def _on_training_start(self) -> None:
        self._last = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        if self.callback is not None:
            self.callback.on_rollout_start()

    def _on_step(self) -> bool:
        keep = True if self.callback is None else self.callback.on_step()
        if self.bar is not None:
            self.bar.update(self.model.num_timesteps - self._last)
            self._last = self.model.num_timesteps
        if not keep:
            self.stopped = True
        return keep

    def _on_rollout_end(self) -> None:
        if self.callback is not None:
            self.callback.on_rollout_end()

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        if self.callback is not None:
            self.callback.update_locals(locals_)


# ------------------------------------------------------------------ the agent
class AIHF(BaseAgent):
    """Alignment with Integrated Human Feedback (004 Alg. 1) with an SB3 SAC lower level.

    Parameters
    ----------
    env
        A Gymnasium env or id with ``Box`` observation and action spaces (or an SB3 VecEnv).
    demonstrations
        Expert data ``D^E``: a Minari dataset id (checked against the env), a list of
        :class:`~prefgym.data.control.Episode`, or a tuple ``(observations, actions)``.
    preferences
        Preference data ``P``: :class:`~prefgym.data.control.PreferencePairs` or a path
        to its ``.npz`` (checked against the env).
    mode
        ``"aihf"`` (both terms), ``"rlhf"`` (``w_1 = 0``: reward model from preferences,
        then SAC) or ``"irl"`` (preferences off: ML-IRL).
    w_demo, w_pref
        Weights of the demonstration (Eq. 18) and preference (Eq. 8) terms. None (default):
        004's Eq. 34 weights ``|D| / (|D| + |P|)`` and ``|P| / (|D| + |P|)`` (a term used alone: 1).
    temperature
        ``beta``, shared by the preference model, the demonstration gradient and SAC (its
        ``ent_coef``). None (default): SAC's fixed ``ent_coef`` (0.2 by default); given, it
        sets ``ent_coef`` (passing a different ``ent_coef`` in ``sac_kwargs`` is an error).
    segment_length
        ``L``, the steps one feedback item spans (module docstring); default the preference
        pairs' segment length, else 1.
    reward_net_kwargs
        :class:`RewardNet` arguments (default (64, 64) ReLU, clamp 10).
    sac_kwargs
        SAC arguments, merged over :data:`DEFAULT_SAC_KWARGS` (``policy`` defaults to
        ``"MlpPolicy"``; ``replay_buffer_class`` is always the relabelling buffer).
    reward_lr, reward_weight_decay
        Adam on the reward (004: 1e-4; ML-IRL: weight decay 1e-3).
    reward_steps_per_iter
        Reward gradient steps per outer iteration (ignored in ``"rlhf"`` mode).
    reward_batch_size, pref_batch_size
        ``(s, a)`` pairs per side of the demonstration term; segment pairs per step.
    sac_steps_per_iter
        Environment steps of SAC per outer iteration (004: 5k).
    agent_window
        The newest buffer transitions the agent samples come from; default the last
        iteration's ``sac_steps_per_iter``.
    reward_pretrain_steps
        Preference-only reward steps before SAC starts (default 2000 for ``"rlhf"``,
        else 0).
    bc_steps, bc_batch_size
        Behaviour cloning of the SAC actor on the demonstrations before SAC starts.
    pref_discount
        ``gamma`` in ``R(sigma) = sum_t gamma^t r_t`` of a segment (default 1).
    device
        Torch device of SAC and the reward net.
    seed
        Seeds SAC, the reward net's initialisation and the minibatch sampler.
    verbose, tensorboard_log
        As in SB3; reward-step statistics go to the SAC logger under ``aihf/``.

    Attributes
    ----------
    sac
        The SB3 SAC model (the lower level).
    reward_net
        The :class:`RewardNet`.
    history
        One dict per outer iteration: timesteps and reward-loss terms.
    """

    name: ClassVar[str] = "aihf"

    def __init__(
        self,
        env,
        demonstrations=None,
        preferences=None,
        mode: str = "aihf",
        w_demo: float | None = None,
        w_pref: float | None = None,
        temperature: float | None = None,
        segment_length: int | None = None,
        reward_net_kwargs: dict | None = None,
        sac_kwargs: dict | None = None,
        reward_lr: float = 1e-4,
        reward_weight_decay: float = 1e-3,
        reward_steps_per_iter: int = 10,
        reward_batch_size: int = 256,
        pref_batch_size: int = 64,
        sac_steps_per_iter: int = 5000,
        agent_window: int | None = None,
        reward_pretrain_steps: int | None = None,
        bc_steps: int = 0,
        bc_batch_size: int = 256,
        pref_discount: float = 1.0,
        device: str = "cpu",
        seed: int | None = None,
        verbose: int = 0,
        tensorboard_log: str | None = None,
    ):
        super().__init__(seed=seed, verbose=verbose)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        if isinstance(env, str):
            env = gymnasium.make(env)
        self.mode = mode
        for name, w in (("w_demo", w_demo), ("w_pref", w_pref)):
            if w is not None and not float(w) >= 0:
                raise InvalidArgumentError(f"{name} must be >= 0 or None (004's weights); got {w}")
        self._w_args = (w_demo, w_pref)
        self.reward_net_kwargs = dict(reward_net_kwargs or {})
        self.temperature = _shared_temperature(temperature, sac_kwargs)
        self.sac_kwargs = {**DEFAULT_SAC_KWARGS, **(sac_kwargs or {}), "ent_coef": self.temperature}
        self.segment_length = None if segment_length is None else int(segment_length)
        if self.segment_length is not None and self.segment_length < 1:
            raise InvalidArgumentError(f"segment_length must be >= 1; got {segment_length}")
        self.reward_lr, self.reward_weight_decay = float(reward_lr), float(reward_weight_decay)
        self.reward_steps_per_iter = int(reward_steps_per_iter)
        self.reward_batch_size, self.pref_batch_size = int(reward_batch_size), int(pref_batch_size)
        self.sac_steps_per_iter = int(sac_steps_per_iter)
        if self.sac_steps_per_iter < 1:
            raise ValueError(f"sac_steps_per_iter must be >= 1; got {sac_steps_per_iter}")
        self.agent_window = agent_window
        self.reward_pretrain_steps = (2000 if mode == "rlhf" else 0) if reward_pretrain_steps is None \
            else int(reward_pretrain_steps)
        self.bc_steps, self.bc_batch_size = int(bc_steps), int(bc_batch_size)
        self.pref_discount = float(pref_discount)
        self.device = torch.device(device)
        self.tensorboard_log = tensorboard_log
        self.history: list[dict[str, float]] = []
        self._pretrained = False
        self._last_chunk = 0

        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, spaces.Box) or not isinstance(act_space, spaces.Box):
            raise TypeError("AIHF needs Box observation and action spaces; got "
                            f"{type(obs_space).__name__} and {type(act_space).__name__}")
        kwargs = dict(self.sac_kwargs)
        policy = kwargs.pop("policy", "MlpPolicy")
        kwargs.pop("replay_buffer_class", None)
        self.sac = SAC(policy, env, replay_buffer_class=RewardRelabelingReplayBuffer, seed=seed,
                       device=device, verbose=verbose, tensorboard_log=tensorboard_log, **kwargs)
        self.env_id = _env_id(env)
        self.obs_dim = int(np.prod(obs_space.shape))
        self.act_dim = int(np.prod(act_space.shape))
        self._low = np.asarray(act_space.low, np.float64).reshape(-1)
        self._high = np.asarray(act_space.high, np.float64).reshape(-1)

        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen)))
            self.reward_net = RewardNet(self.obs_dim, self.act_dim, **self.reward_net_kwargs).to(self.device)
        self.reward_optimizer = make_reward_optimizer(self.reward_net.parameters(), lr=self.reward_lr,
                                                      weight_decay=self.reward_weight_decay)
        self._attach_reward()

        self.demonstrations = self._prepare_demos(demonstrations)
        self.preferences = self._prepare_prefs(preferences)
        self._set_weights()
        stats = [d for d in (self._demo_obs_np, self._pref_obs_np) if d is not None]
        if stats:
            self.reward_net.set_normalization(np.concatenate(stats))

    # -------------------------------------------------------------- estimator weights
    def _set_weights(self) -> None:
        """004's Eq. 34 weights from the data sizes, unless given (class docstring)."""
        L = self.segment_length or (self._pref_segment_length or 1)
        self.horizon = float(np.sum(self.pref_discount ** np.arange(L)))
        self.n_demo = 0.0 if self.demonstrations is None else len(self.demonstrations["obs"]) / L
        self.n_pref = 0.0 if self.preferences is None else float(self.preferences["n"])
        w_demo, w_pref = self._w_args
        use_demo, use_pref = self.mode != "rlhf", self.mode != "irl"
        if use_demo and use_pref and self.n_demo > 0 and self.n_pref > 0:
            paper = paper_weights(self.n_demo, self.n_pref)
        else:  # a term used alone (or data not given yet: learn() refuses to start)
            paper = (1.0, 1.0)
        self.w_demo = 0.0 if not use_demo else float(paper[0] if w_demo is None else w_demo)
        self.w_pref = 0.0 if not use_pref else float(paper[1] if w_pref is None else w_pref)

    # -------------------------------------------------------------- data
    def scale_actions(self, actions: np.ndarray) -> np.ndarray:
        """Env-unit actions ``(..., act_dim)`` -> SAC's ``[-1, 1]`` scale (clipped)."""
        a = np.asarray(actions, np.float64)
        return np.clip(2.0 * (a - self._low) / (self._high - self._low) - 1.0, -1.0, 1.0).astype(np.float32)

    def _tensor(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)

    def _prepare_demos(self, demos):
        self._demo_obs_np = None
        if demos is None:
            return None
        if isinstance(demos, str):
            demos = load_episodes(demos, env_id=self.env_id, kind="demos")
        if isinstance(demos, tuple) and len(demos) == 2:
            obs, act = (np.asarray(x, np.float32) for x in demos)
        elif isinstance(demos, (list, tuple)) and all(isinstance(e, Episode) for e in demos):
            obs, act = flatten_episodes(demos)
        else:
            raise TypeError("demonstrations must be a Minari dataset id, a list of Episodes or "
                            f"(observations, actions); got {type(demos).__name__}")
        obs = obs.reshape(len(obs), -1)
        act = act.reshape(len(act), -1)
        if obs.shape[1] != self.obs_dim or act.shape[1] != self.act_dim or len(obs) != len(act):
            raise ValueError(f"demonstrations have observations {obs.shape} and actions {act.shape}; the env "
                             f"needs (N, {self.obs_dim}) and (N, {self.act_dim})")
        self._demo_obs_np = obs
        return {"obs": self._tensor(obs), "act": self._tensor(self.scale_actions(act))}

    def _prepare_prefs(self, prefs):
        self._pref_obs_np = None
        self._pref_segment_length = None
        if prefs is None:
            return None
        if isinstance(prefs, (str, Path)):
            prefs = PreferencePairs.load(prefs, env_id=self.env_id)
        if not isinstance(prefs, PreferencePairs):
            raise TypeError("preferences must be PreferencePairs or a path to one; "
                            f"got {type(prefs).__name__}")
        if self.env_id is not None and prefs.env_id not in (None, self.env_id):
            from prefgym.data.control import DatasetError

            raise DatasetError(f"preference pairs were recorded on {prefs.env_id!r}, not {self.env_id!r}")
        n, L = len(prefs), prefs.segment_length
        self._pref_segment_length = int(L)
        if prefs.obs_a.shape[-1] != self.obs_dim or prefs.act_a.shape[-1] != self.act_dim:
            raise ValueError(f"preference segments have obs dim {prefs.obs_a.shape[-1]} and action dim "
                             f"{prefs.act_a.shape[-1]}; the env needs {self.obs_dim} and {self.act_dim}")
        self._pref_obs_np = np.concatenate([prefs.obs_a[prefs.mask_a], prefs.obs_b[prefs.mask_b]])
        disc = self.pref_discount ** np.arange(L)
        return {
            "obs_a": self._tensor(prefs.obs_a), "act_a": self._tensor(self.scale_actions(prefs.act_a)),
            "w_a": self._tensor(prefs.mask_a * disc), "obs_b": self._tensor(prefs.obs_b),
            "act_b": self._tensor(self.scale_actions(prefs.act_b)), "w_b": self._tensor(prefs.mask_b * disc),
            "y": self._tensor(prefs.labels), "n": n,
        }

    def _attach_reward(self) -> None:
        net = self.reward_net
        self.sac.replay_buffer.reward_fn = lambda obs, act: net(obs, act)

    # -------------------------------------------------------------- rewards
    def reward(self, observations, actions) -> np.ndarray:
        """Learned rewards ``r(s, a; theta)`` of env-unit ``observations (B, ...)``, ``actions (B, ...)``."""
        obs = np.asarray(observations, np.float32).reshape(-1, self.obs_dim)
        act = self.scale_actions(np.asarray(actions).reshape(-1, self.act_dim))
        with torch.no_grad():
            return self.reward_net(self._tensor(obs), self._tensor(act)).cpu().numpy()

    def _agent_batch(self, n: int):
        rb = self.sac.replay_buffer
        filled = rb.buffer_size if rb.full else rb.pos
        window = min(self.agent_window or max(self._last_chunk // rb.n_envs, 1), filled)
        if window < 1:
            raise RuntimeError("no agent transitions yet: run SAC before a demonstration step")
        back = self.rng.integers(1, window + 1, size=n)
        idx = (rb.pos - back) % rb.buffer_size
        env_idx = self.rng.integers(rb.n_envs, size=n)
        obs = rb.observations[idx, env_idx].reshape(n, -1)
        act = rb.actions[idx, env_idx].reshape(n, -1)
        return self._tensor(obs), self._tensor(act)

    def reward_loss(self, use_demo: bool = True,
                    use_pref: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
        """The surrogate loss :func:`aihf_loss` on one sampled minibatch of each data source."""
        demo = agent = prefs = None
        if use_demo and self.w_demo > 0:
            d = self.demonstrations
            i = self.rng.integers(len(d["obs"]), size=self.reward_batch_size)
            demo = (d["obs"][i], d["act"][i])
            agent = self._agent_batch(self.reward_batch_size)
        if use_pref and self.w_pref > 0:
            p = self.preferences
            i = torch.as_tensor(self.rng.integers(p["n"], size=self.pref_batch_size), device=self.device)
            prefs = {k: p[k][i] for k in ("obs_a", "act_a", "w_a", "obs_b", "act_b", "w_b", "y")}
        return aihf_loss(self.reward_net, demo, agent, prefs, self.w_demo, self.w_pref,
                         temperature=self.temperature, horizon=self.horizon)

    def reward_step(self, n_steps: int = 1, use_demo: bool = True, use_pref: bool = True) -> dict[str, float]:
        """``n_steps`` Adam steps on the reward (Alg. 1's reward alignment); returns mean statistics."""
        acc: dict[str, list[float]] = {}
        for _ in range(n_steps):
            loss, stats = self.reward_loss(use_demo, use_pref)
            self.reward_optimizer.zero_grad()
            loss.backward()
            self.reward_optimizer.step()
            for k, v in stats.items():
                acc.setdefault(k, []).append(v)
        return {k: float(np.nanmean(v)) if not np.all(np.isnan(v)) else float("nan") for k, v in acc.items()}

    # -------------------------------------------------------------- pretraining
    def _check_data(self) -> None:
        if self.w_demo > 0 and self.demonstrations is None:
            raise ValueError(f"mode {self.mode!r} with w_demo > 0 needs demonstrations")
        if self.w_pref > 0 and self.preferences is None:
            raise ValueError(f"mode {self.mode!r} with w_pref > 0 needs preferences")
        if self.bc_steps > 0 and self.demonstrations is None:
            raise ValueError("bc_steps > 0 needs demonstrations")

    def behaviour_clone(self, n_steps: int) -> float:
        """Behaviour cloning: ``n_steps`` steps of max likelihood of the demonstrations under SAC's actor.

        Returns the last minibatch's negative log-likelihood.
        """
        actor, d = self.sac.actor, self.demonstrations
        nll = float("nan")
        for _ in range(n_steps):
            i = self.rng.integers(len(d["obs"]), size=self.bc_batch_size)
            obs, act = d["obs"][i], d["act"][i].clamp(-1 + 1e-4, 1 - 1e-4)
            mean, log_std, kw = actor.get_action_dist_params(obs)
            dist = actor.action_dist.proba_distribution(mean, log_std, **kw)
            loss = -dist.log_prob(act).mean()
            actor.optimizer.zero_grad()
            loss.backward()
            actor.optimizer.step()
            nll = loss.item()
        return nll

    def _pretrain(self) -> None:
        if self._pretrained:
            return
        if self.bc_steps > 0:
            nll = self.behaviour_clone(self.bc_steps)
            self.history.append({"timesteps": 0, "iteration": -1, "bc_nll": nll})
        if self.reward_pretrain_steps > 0 and self.w_pref > 0:
            stats = self.reward_step(self.reward_pretrain_steps, use_demo=False)
            self.history.append({"timesteps": 0, "iteration": -1,
                                 **{f"pretrain_{k}": v for k, v in stats.items()}})
        self._pretrained = True

    # -------------------------------------------------------------- training
    @property
    def updates_reward(self) -> bool:
        """Whether outer iterations take reward steps (not in ``"rlhf"`` mode, where the reward is frozen)."""
        return self.mode != "rlhf" and self.reward_steps_per_iter > 0

    @property
    def num_timesteps(self) -> int:
        """SAC environment steps since the last ``learn(..., reset_num_timesteps=True)``.

        SAC's own counter (``sac.num_timesteps``, which drives ``learning_starts`` and
        ``train_freq``) is never reset: the lower level is warm-started across calls.
        """
        sac = self.__dict__.get("sac")
        return (0 if sac is None else sac.num_timesteps) - self._timestep_offset

    @num_timesteps.setter
    def num_timesteps(self, value: int) -> None:
        sac = self.__dict__.get("sac")
        self._timestep_offset = (0 if sac is None else sac.num_timesteps) - int(value)

    def learn(self, total_timesteps: int, callback=None, log_interval: int = 4, tb_log_name: str = "AIHF",
              reset_num_timesteps: bool = True, progress_bar: bool = False) -> AIHF:
        """Run Alg. 1 for ``total_timesteps`` SAC environment steps (continuing from the current state).

        Parameters
        ----------
        total_timesteps
            SAC environment steps (a timestep is an env step here, as in SB3);
            ``ceil(total / sac_steps_per_iter)`` outer iterations.
        callback
            SB3 or prefgym callback(s) or a function ``f(locals, globals)``. It is initialised
            once with this agent as its ``model`` and called at every SAC step of the inner
            ``SAC.learn`` calls (with SAC's rollout locals). Returning False stops AIHF.
        log_interval
            SAC's (episodes between its log dumps); the reward statistics (``aihf/...``) are
            recorded and dumped after every outer iteration.
        tb_log_name, reset_num_timesteps
            As in SB3 (:attr:`num_timesteps` restarts at 0; SAC's counter does not).
        progress_bar
            One tqdm bar over ``total_timesteps``.
        """
        total = check_timesteps(total_timesteps)
        self._check_data()
        if reset_num_timesteps:
            self.num_timesteps = 0
        self._total_timesteps = total + self.num_timesteps
        if not self._custom_logger and (reset_num_timesteps or self._logger is None):
            # one logger for all inner learn calls, so reward statistics are not lost between them
            if self._logger is not None:
                self._logger.close()
            self._logger = configure_logger(self.verbose, self.tensorboard_log, tb_log_name,
                                            reset_num_timesteps or self.sac.num_timesteps == 0)
            self.sac.set_logger(self._logger)
        cb = convert_callback(callback)
        if cb is not None:
            cb.init_callback(self)
            cb.on_training_start({"self": self, "total_timesteps": total, "callback": cb}, globals())
        self._pretrain()
        bar = None
        if progress_bar:
            bar = tqdm(total=total, desc="AIHF", unit="step", mininterval=0.25)
        outer = _OuterCallback(cb, bar)
        remaining = total
        try:
            while remaining > 0:
                n = min(self.sac_steps_per_iter, remaining)
                before = self.sac.num_timesteps
                # Policy alignment: SAC on the current reward (Eq. 7), warm-started
                self.sac.learn(n, callback=outer, log_interval=log_interval, tb_log_name=tb_log_name,
                               reset_num_timesteps=False, progress_bar=False)
                self._last_chunk = self.sac.num_timesteps - before
                remaining -= max(self._last_chunk, 1)
                if outer.stopped:
                    break
                # Reward alignment: theta <- theta + eta g^k (Eq. 19)
                stats = self.reward_step(self.reward_steps_per_iter) if self.updates_reward else {}
                self.num_iterations += 1
                row = {"timesteps": self.sac.num_timesteps, "iteration": self.num_iterations, **stats}
                self.history.append(row)
                for k, v in stats.items():
                    self.sac.logger.record(f"aihf/{k}", v)
                self.sac.logger.record("aihf/iteration", self.num_iterations)
                self.sac.logger.dump(self.num_timesteps)
        finally:
            if bar is not None:
                bar.close()
        if cb is not None:
            cb.on_training_end()
        return self

    def set_logger(self, logger) -> None:
        """Use ``logger`` (SB3's ``configure(...)`` or prefgym's) for SAC's and the reward's statistics."""
        super().set_logger(logger)
        self.sac.set_logger(logger)

    @property
    def logger(self):
        """SAC's logger, shared with the reward statistics (a default one before the first ``learn``)."""
        if getattr(self.sac, "_logger", None) is None:
            self._logger = configure_logger(self.verbose, None, "AIHF", True)
            self.sac.set_logger(self._logger)
        return self.sac.logger

    def get_env(self):
        """SAC's training VecEnv."""
        return self.sac.get_env()

    def get_vec_normalize_env(self):
        return self.sac.get_vec_normalize_env()

    def set_random_seed(self, seed: int | None = None) -> None:
        """Re-seed SAC (its action sampling, torch, the env's spaces) and the reward minibatch sampler."""
        if seed is None:
            return
        super().set_random_seed(seed)
        self.sac.set_random_seed(self.seed)

    def get_parameters(self) -> dict[str, Any]:
        """SAC's parameters (``sac/policy``, ``sac/actor.optimizer``, ...), ``reward_net`` and
        ``reward_optimizer`` state dicts (copies)."""
        params: dict[str, Any] = {f"sac/{k}": v for k, v in self.sac.get_parameters().items()}
        params["reward_net"] = {k: v.detach().clone() for k, v in self.reward_net.state_dict().items()}
        params["reward_optimizer"] = copy.deepcopy(self.reward_optimizer.state_dict())
        return params

    def set_parameters(self, load_path_or_dict, exact_match: bool = True, device: str = "auto") -> None:
        """Load a dict of :meth:`get_parameters` (``exact_match``: all of them, strict state dicts)."""
        from prefgym.errors import InvalidArgumentError, InvalidTypeError

        if not isinstance(load_path_or_dict, dict):
            raise InvalidTypeError("set_parameters takes the dict of get_parameters(); got "
                                   f"{type(load_path_or_dict).__name__}")
        known = set(self.get_parameters())
        unknown, missing = sorted(set(load_path_or_dict) - known), sorted(known - set(load_path_or_dict))
        if unknown:
            raise InvalidArgumentError(f"unknown parameters {unknown}; AIHF has {sorted(known)}")
        if exact_match and missing:
            raise InvalidArgumentError(f"parameters {missing} are missing (exact_match=True)")
        sac = {k[4:]: v for k, v in load_path_or_dict.items() if k.startswith("sac/")}
        if sac:
            self.sac.set_parameters(sac, exact_match=exact_match, device=device)
        if "reward_net" in load_path_or_dict:
            self.reward_net.load_state_dict(load_path_or_dict["reward_net"], strict=exact_match)
        if "reward_optimizer" in load_path_or_dict:
            self.reward_optimizer.load_state_dict(load_path_or_dict["reward_optimizer"])

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """SAC's action for ``observation`` (SB3's ``predict``)."""
        return self.sac.predict(observation, state=state, episode_start=episode_start,
                                deterministic=deterministic)

    @property
    def policy(self):
        """SAC's policy (the current, last-iterate policy)."""
        return self.sac.policy

    # -------------------------------------------------------------- BaseAgent hooks (learn is overridden)
    def _setup_learn(self, total_iterations: int) -> None:  # pragma: no cover - learn is overridden
        pass

    def _iterate(self, index: int) -> None:  # pragma: no cover
        self.learn(self.sac_steps_per_iter)

    def _finish_learn(self, done: int) -> None:  # pragma: no cover
        pass

    def _get_hparams(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "w_demo": self._w_args[0], "w_pref": self._w_args[1],
            "temperature": self.temperature, "segment_length": self.segment_length,
            "reward_net_kwargs": self.reward_net_kwargs, "sac_kwargs": self.sac_kwargs,
            "reward_lr": self.reward_lr, "reward_weight_decay": self.reward_weight_decay,
            "reward_steps_per_iter": self.reward_steps_per_iter, "reward_batch_size": self.reward_batch_size,
            "pref_batch_size": self.pref_batch_size, "sac_steps_per_iter": self.sac_steps_per_iter,
            "agent_window": self.agent_window, "reward_pretrain_steps": self.reward_pretrain_steps,
            "bc_steps": self.bc_steps, "bc_batch_size": self.bc_batch_size,
            "pref_discount": self.pref_discount,
            "device": str(self.device), "seed": self.seed, "verbose": self.verbose,
            "tensorboard_log": self.tensorboard_log,
        }

    def _get_state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.reward_net.state_dict().items()}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.reward_net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})

    # -------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Save SAC, the reward net and its optimizer to one zip, atomically; no pickles.

        ``agent.json`` (format ``prefgym.aihf``, version, hyper-parameters, SAC's counters and
        optimiser param groups, history), ``sac.safetensors`` (policy, optimisers, entropy
        coefficient: :func:`prefgym.sb3_files.sb3_state`) and ``reward.safetensors`` (reward
        net and its Adam state). The replay buffer is not saved (SB3's ``save`` does not
        save it either); a loaded agent refills it as it trains.
        """
        from safetensors.torch import save as st_save

        from prefgym.sb3_files import optimizer_to_flat, sb3_state

        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(path.suffix + ".zip")
        sac_tensors, sac_meta = sb3_state(self.sac)
        opt_tensors, opt_meta = optimizer_to_flat("optimizer", self.reward_optimizer.state_dict())
        reward_tensors = {**{f"reward_net.{k}": v for k, v in self.reward_net.state_dict().items()},
                          **opt_tensors}
        reward_tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in reward_tensors.items()}
        meta = {"format": AIHF_FORMAT, "format_version": AIHF_FORMAT_VERSION,
                "class": type(self).__name__, "hparams": self._get_hparams(), "env_id": self.env_id,
                "num_iterations": self.num_iterations, "pretrained": self._pretrained,
                "rng": self.rng.bit_generator.state, "history": self.history,
                "sac_state": sac_meta, "reward_optimizer": opt_meta}
        with atomic_write(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("agent.json", json.dumps(meta, indent=1, default=json_default))
            zf.writestr("sac.safetensors", st_save(sac_tensors))
            zf.writestr("reward.safetensors", st_save(reward_tensors))
        return path

    @classmethod
    def load(cls, path: str | Path, env=None, demonstrations=None, preferences=None,
             trust_remote_code: bool = False, **overrides) -> AIHF:
        """Load an agent saved by :meth:`save`.

        ``env`` defaults to ``gymnasium.make`` of the saved env id; pass the data to
        continue training (not needed for :meth:`predict` or :meth:`reward`).
        ``overrides`` replace saved hyper-parameters. A file of an older prefgym (an SB3
        zip inside, which SB3 un-pickles) is read only with ``trust_remote_code=True``.

        Raises
        ------
        AgentLoadError
            Missing, empty, truncated, corrupted, foreign or newer file; wrong field types;
            weights that do not fit.
        UnsafeFileError
            A file holding a pickled SB3 zip, without ``trust_remote_code=True``.
        """
        path, members, meta, version = _read_aihf_file(Path(path), cls.__name__)
        where = str(path)
        legacy = version < 2
        if legacy and not trust_remote_code:
            raise UnsafeFileError(
                f"{where} was written by an older prefgym: its SAC is an SB3 zip whose pickled "
                "(':serialized:') fields SB3 un-pickles, which runs code stored in the file. Load it only "
                "if you trust its source, with trust_remote_code=True (CLI: --trust-remote-code), then "
                "re-save it")
        if env is None:
            if meta.get("env_id") is None:
                raise AgentLoadError(f"{where} does not name its env; pass env=")
            env = meta["env_id"]
        _check_hparam_types(cls, meta["hparams"], where)
        hparams = {**meta["hparams"], **overrides}
        try:
            agent = cls(env, demonstrations=demonstrations, preferences=preferences, **hparams)
        except (TypeError, ValueError, KeyError, gymnasium.error.Error) as exc:
            raise AgentLoadError(f"{where}: cannot rebuild AIHF from its saved hyper-parameters "
                                 f"({type(exc).__name__}: {exc})") from None
        saved = _load_sac_and_reward_state(agent, members, meta, where, legacy)
        try:
            agent.reward_net.load_state_dict(saved["reward_net"])
            agent.reward_optimizer.load_state_dict(saved["optimizer"])
            agent.rng.bit_generator.state = meta["rng"]
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise AgentLoadError(f"{where}: the saved reward net does not fit the agent "
                                 f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from None
        agent.num_iterations = meta["num_iterations"]
        agent._pretrained = bool(meta.get("pretrained", False))
        agent.history = meta.get("history", [])
        return agent


def _shared_temperature(temperature, sac_kwargs) -> float:
    """The one temperature: ``temperature`` or SAC's fixed ``ent_coef`` (they must agree)."""
    given = (sac_kwargs or {}).get("ent_coef")
    if temperature is None:
        value = DEFAULT_SAC_KWARGS["ent_coef"] if given is None else given
        if isinstance(value, str):
            raise InvalidArgumentError(
                f"AIHF needs a fixed SAC ent_coef, the temperature its preference model shares; got ent_coef="
                f"{value!r} (pass a number, or temperature=)")
        temperature = value
    elif given is not None and given != temperature:
        raise InvalidArgumentError(f"temperature={temperature} and sac_kwargs ent_coef={given!r} differ; "
                                   "AIHF uses one temperature for SAC and the preference model (give one)")
    temperature = float(temperature)
    if not temperature > 0:
        raise InvalidArgumentError(f"temperature must be > 0; got {temperature}")
    return temperature


AIHF_FORMAT, AIHF_FORMAT_VERSION = "prefgym.aihf", 2
_AIHF_MEMBERS = ("agent.json", "sac.zip", "reward.pt", "sac.safetensors", "reward.safetensors")


def _read_aihf_file(path: Path, class_name: str) -> tuple[Path, dict[str, bytes], dict, int]:
    """The file's path (``.zip`` added if only that exists), its members, its checked
    ``agent.json`` and format version; every member the version needs is present."""
    from prefgym.sb3_files import check_format

    if not path.exists() and path.with_suffix(path.suffix + ".zip").exists():
        path = path.with_suffix(path.suffix + ".zip")
    where = str(path)
    if not path.is_file():
        raise AgentLoadError(f"no saved AIHF agent at {where}")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist() if n in _AIHF_MEMBERS}
    except Exception as exc:  # noqa: BLE001 - a damaged zip raises many types (BadZipFile, zlib, ...)
        raise AgentLoadError(f"{where} is not a readable AIHF file (empty, truncated or corrupted: "
                             f"{type(exc).__name__}: {exc})") from None
    if "agent.json" not in members:
        raise AgentLoadError(f"{where} is not an AIHF agent file (no agent.json)")
    try:
        meta = json.loads(members["agent.json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AgentLoadError(f"{where}: agent.json is not valid JSON ({exc})") from None
    version = check_format(meta, AIHF_FORMAT, AIHF_FORMAT_VERSION, where)
    for key, kind in (("class", str), ("hparams", dict), ("num_iterations", int), ("rng", dict)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise AgentLoadError(f"{where}: agent.json field {key!r} must be a {kind.__name__}; "
                                 f"got {meta.get(key)!r:.80}")
    if meta["class"] != class_name:
        raise AgentLoadError(f"{where} holds a {meta['class']} agent, not a {class_name}")
    needed = ("sac.zip", "reward.pt") if version < 2 else ("sac.safetensors", "reward.safetensors")
    missing = [m for m in needed if m not in members]
    if missing:
        raise AgentLoadError(f"{where} is incomplete: no {missing[0]}")
    return path, members, meta, version


def _load_sac_and_reward_state(agent: AIHF, members: dict[str, bytes], meta: dict, where: str,
                               legacy: bool) -> dict:
    """Load the SAC weights into ``agent``; return the reward net's and optimiser's saved state.
    A legacy file (an SB3 zip and a torch file) is read only when the caller trusts it."""
    from safetensors.torch import load as st_load

    from prefgym.sb3_files import load_sb3_state, optimizer_from_flat

    if legacy:  # the caller trusts the file
        agent.sac = SAC.load(io.BytesIO(members["sac.zip"]), env=agent.sac.get_env(), device=agent.device,
                             custom_objects={"replay_buffer_class": RewardRelabelingReplayBuffer})
        agent._attach_reward()
        return torch.load(io.BytesIO(members["reward.pt"]), map_location=agent.device, weights_only=True)
    try:
        sac_tensors = st_load(members["sac.safetensors"])
        reward_tensors = st_load(members["reward.safetensors"])
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise AgentLoadError(f"{where}: weights are corrupted ({type(exc).__name__}: "
                             f"{exc})") from None
    load_sb3_state(agent.sac, sac_tensors, meta.get("sac_state") or {}, where)
    try:
        return {"reward_net": {k[len("reward_net."):]: v for k, v in reward_tensors.items()
                               if k.startswith("reward_net.")},
                "optimizer": optimizer_from_flat("optimizer", reward_tensors, meta["reward_optimizer"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise AgentLoadError(f"{where}: reward optimizer state is malformed ({exc})") from None


def _env_id(env) -> str | None:
    spec = getattr(env, "spec", None)
    if spec is None and hasattr(env, "envs"):
        spec = getattr(env.envs[0], "spec", None)
    return getattr(spec, "id", None)


# ------------------------------------------------------------------ evaluation helpers
def learned_returns(reward, episodes, per_step: bool = False) -> np.ndarray:
    """Sum (or mean, ``per_step``) of the learned reward over each episode.

    ``reward`` is an :class:`AIHF` agent or any ``reward(observations, actions) -> (B,)``.
    """
    fn = reward.reward if hasattr(reward, "reward") else reward
    out = []
    for e in episodes:
        r = np.asarray(fn(np.asarray(e.observations[:-1]), np.asarray(e.actions)))
        out.append(r.mean() if per_step else r.sum())
    return np.asarray(out)


def reward_rank_correlation(reward, episodes, per_step: bool = False) -> float:
    """Spearman correlation between learned and true episode returns (C8's rank check)."""
    from scipy.stats import spearmanr

    true = np.array([e.ret for e in episodes])
    return float(spearmanr(learned_returns(reward, episodes, per_step), true).statistic)
