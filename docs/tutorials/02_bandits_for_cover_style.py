# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 2 -- Bandits for cover style
#
# Every push carries a cover image, and covers come in styles (*minimal, vivid, pastel, noir,
# retro*). Some styles get opened more than others, and users differ in taste. Nobody tells
# the platform which style is best: it has to **try styles to learn** (explore) while **using
# what it has learned** (exploit). That trade-off is the multi-armed bandit problem.
#
# You will learn
#
# 1. how a learning agent runs in the environment loop (`predict`, then `update` with what
#    happened);
# 2. greedy vs Thompson sampling vs LinUCB on the same users, and **regret**: the opens lost
#    against the best fixed style;
# 3. why a bandit that learns from *all* users (continual, pooled) beats one that learns from
#    each user alone.
#
# Timing is held fixed (pushes at 08:00 and 20:00 UTC) so that only the style changes. It runs
# in about a minute on two CPU cores; exercises with their answers are at the end.

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from covercast.agents import LinUCBStyleAgent, StaticScheduler, ThompsonStyleAgent
from covercast.agents.evaluate import evaluate_agents
from covercast.envs import make_vec
from covercast.experiments.stats import compare
from covercast.simulators import default_params

plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm without ipywidgets

# %% [markdown]
# ## 1. Many users, one loop
#
# `make_vec(n)` builds the **population vector environment**: `n` users of
# `covercast/PushSchedule-v0` stepped together, hour by hour. The observation is an `(n, 40)`
# array, the action one number per user (`0` wait, `k` push with style `k - 1`), and `info`
# holds each user's responses (`pushed`, `opened`, ...). A user who opts out is replaced by a
# fresh one, so the population stays at `n`.
#
# A learning agent runs the same loop as any agent, plus one call: after each step,
# `agent.update(obs, action, reward, next_obs, terminated, info)` tells it what happened. The
# style bandits credit an open to the style of the user's pending push (opens can come hours
# later, from the notification tray), and count a push as a failure when 24 hours pass
# without an open.

# %%
USERS, DAYS = 10_000, 14
STYLES = default_params().styles
env = make_vec(USERS, horizon_days=DAYS)


def run(agent, seed=0, deterministic=False):
    """One run of `DAYS` days on the same `USERS` users (same `seed`): opens per hour, and
    pushes per hour and style (`(hours, styles)`)."""
    agent.reset(1)
    obs, _ = env.reset(seed=seed)
    start, state = np.ones(USERS, dtype=bool), None
    opens, pushes = [], []
    for _ in range(DAYS * 24):
        action, state = agent.predict(obs, state, start, deterministic=deterministic)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if getattr(agent, "learns", False):
            agent.update(obs, action, reward, next_obs, terminated, info)
        opens.append(int(info["opened"].sum()))
        pushed = info["pushed"] > 0
        pushes.append(np.bincount(action[pushed] - 1, minlength=len(STYLES)))
        start, obs = terminated | truncated, next_obs
    return np.array(opens), np.array(pushes)


# %% [markdown]
# ## 2. What each style is worth
#
# First the answer no bandit has: run every style on its own (`StaticScheduler(style=s)`)
# on the **same users** (the same seed gives the same people with the same days) and count
# the opens.

# %%
fixed = {s: run(StaticScheduler(style=k))[0] for k, s in enumerate(STYLES)}
n_pushes = USERS * DAYS * 2
ctr = pd.Series({s: o.sum() / n_pushes for s, o in fixed.items()}, name="open rate per push")
best_style = ctr.idxmax()
ctr.to_frame().T.round(4)

# %%
display(Markdown(
    f"The best fixed style is **{best_style}** ({ctr.max():.2%} of pushes opened), the worst "
    f"**{ctr.idxmin()}** ({ctr.min():.2%}): a relative gap of "
    f"{ctr.max() / ctr.min() - 1:.0%}. Small per push, but a platform sends millions -- and "
    f"the bandit has to find it from the opens alone, a few percent of a noisy signal."))

# %% [markdown]
# ## 3. Three ways to choose
#
# * **Greedy** keeps a running estimate of each style's open rate and always takes the
#   highest. With a realistic prior (a 5 % open rate for every style, `prior=(1, 19)`) the
#   first style it tries fails a few times, the untried ones keep their prior... and it may
#   never learn what the others are worth. Greedy is `ThompsonStyleAgent` asked for its
#   **most likely** answer (`deterministic=True`: the largest posterior mean).
# * **Thompson sampling** keeps a Beta posterior of each style's open rate and, for each
#   push, *draws* one plausible value per style and takes the largest: a style is tried as
#   often as it might be the best.
# * **LinUCB** fits one ridge regression of "opened" per style on a small context read from
#   the observation (when the user is active, the clock, their recent open rate) and takes the
#   style with the highest *upper confidence bound*: the estimate plus a bonus for what it has
#   not seen. It can learn that different users like different styles.
#
# All three learn from every user at once (one shared model), as a deployed bandit does.

# %%
bandits = {
    "greedy": (ThompsonStyleAgent(timing=StaticScheduler(), prior=(1, 19)), True),
    "Thompson": (ThompsonStyleAgent(timing=StaticScheduler(), prior=(1, 19)), False),
    "LinUCB": (LinUCBStyleAgent(timing=StaticScheduler()), False),
    "Thompson, per user": (ThompsonStyleAgent(timing=StaticScheduler(), prior=(1, 19),
                                              per_user=True), False),
}
results = {name: run(agent, deterministic=det) for name, (agent, det) in bandits.items()}
table = pd.DataFrame({name: {"open rate": o.sum() / n_pushes,
                             **dict(zip(STYLES, pushes.sum(0) / pushes.sum(), strict=True))}
                      for name, (o, pushes) in results.items()}).T
table.round(3)

# %% [markdown]
# The columns after the open rate are the share of pushes each bandit gave each style. Now
# **regret**: after `t` hours, how many opens did a bandit lose against always pushing the
# best fixed style? (Against the same users, so the difference is mostly the policy; the
# opens' own luck adds noise of about `sqrt(opens)`.)

# %%
hours = np.arange(1, DAYS * 24 + 1)
best_cum = np.cumsum(fixed[best_style])
fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
for name, (o, _) in results.items():
    ax[0].plot(hours / 24, best_cum - np.cumsum(o), label=name)
for s, o in fixed.items():
    if s != best_style:
        ax[0].plot(hours / 24, best_cum - np.cumsum(o), color="grey", lw=0.8, ls=":")
ax[0].axhline(0, color="k", lw=0.8)
ax[0].set_xlabel("days")
ax[0].set_ylabel(f"opens lost vs always '{best_style}'")
ax[0].set_title("Cumulative regret (dotted: the other fixed styles)")
ax[0].legend(fontsize=8)
for name, (o, _) in results.items():
    daily = o.reshape(DAYS, 24).sum(axis=1) / (2 * USERS)
    ax[1].plot(np.arange(1, DAYS + 1), daily, "o-", ms=3, label=name)
ax[1].axhline(ctr.max(), color="k", ls="--", lw=0.8, label=f"'{best_style}' (14-day mean)")
ax[1].set_xlabel("day")
ax[1].set_ylabel("opens per push")
ax[1].set_title("Open rate day by day")
ax[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
final = {name: int(best_cum[-1] - o.sum()) for name, (o, _) in results.items()}
worst_fixed = int(best_cum[-1] - fixed[ctr.idxmin()].sum())
greedy_top = table.loc["greedy", list(STYLES)].astype(float).idxmax()
ranked = sorted(final, key=final.get)
display(Markdown(
    f"After {DAYS} days ({n_pushes:,} pushes) the regrets are "
    + ", ".join(f"{k} **{v:+,}**" for k, v in final.items())
    + f" opens; always pushing the worst style would have lost {worst_fixed:+,}. The lowest "
    f"regret is **{ranked[0]}**'s. Greedy put {table.loc['greedy', greedy_top]:.0%} of its "
    f"pushes on *{greedy_top}*: with every other style still at its prior it had no reason "
    f"to look further. The per-user Thompson agent learns from one user's {2 * DAYS} pushes "
    f"only -- one or two opens -- far too little to tell styles apart, so it keeps exploring "
    f"all episode long."))

# %% [markdown]
# Where did the pushes go? The share of each day's pushes by style:

# %%
fig, ax = plt.subplots(1, 3, figsize=(12, 3.2), sharey=True)
for a, name in zip(ax, ["Thompson", "LinUCB", "Thompson, per user"], strict=True):
    daily = results[name][1].reshape(DAYS, 24, -1).sum(axis=1)
    share = daily / daily.sum(axis=1, keepdims=True)
    a.stackplot(np.arange(1, DAYS + 1), share.T, labels=STYLES)
    a.set_title(name, fontsize=10)
    a.set_xlabel("day")
    a.set_xlim(1, DAYS)
ax[0].set_ylabel("share of the day's pushes")
ax[-1].legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. What the pooled Thompson agent believes
#
# `ThompsonStyleAgent` keeps its posterior in `alpha` (1 + opens) and `beta` (19 + failures),
# one row shared by all users. If each push's outcome were known at once, the posterior mean
# would end near each style's true open rate. Compare it with the truth of section 2:

# %%
ts = bandits["Thompson"][0]
a, b = ts.alpha[0], ts.beta[0]
mean = a / (a + b)
sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
resolved = a + b - sum(ts.prior)
unresolved = results["Thompson"][1].sum(axis=0) - resolved
fig, ax = plt.subplots(figsize=(8, 3.2))
x = np.arange(len(STYLES))
ax.errorbar(x - 0.15, mean, yerr=2 * sd, fmt="o", capsize=4, label="posterior mean +- 2 sd")
ax.plot(x, (a - ts.prior[0]) / (resolved + unresolved), "^", color="tab:green",
        label="opens / all pushes (unresolved ones as failures)")
ax.plot(x + 0.15, ctr.values, "s", color="k", label="true open rate (fixed-style runs)")
ax.set_xticks(x, STYLES)
ax.set_ylabel("opens per push")
ax.set_title(f"Thompson's posterior after {int(ts.n_pushes_learned):,} resolved pushes")
ax.legend(fontsize=8)
plt.show()

# %%
off = pd.Series((mean - ctr.values) / sd, index=STYLES)
worst = off.abs().idxmax()
k = STYLES.index(worst)
ts_days = results["Thompson"][1].reshape(DAYS, 24, -1).sum(axis=1)
last_share = ts_days[-1, k] / ts_days[-1].sum()
display(Markdown(
    f"The posterior of *{worst}* sits {abs(off[worst]):.1f} posterior standard deviations "
    f"{'above' if off[worst] > 0 else 'below'} its true open rate. The cause is **delayed "
    f"feedback**. An open is credited the hour it happens, but an unopened push counts as a "
    f"failure only when it is replaced by the next push, after 24 hours, or when the user "
    f"leaves. At any moment the recent pushes' successes are in and most of their failures are "
    f"not. *{worst}* got {last_share:.0%} of the last day's pushes, and "
    f"{int(unresolved[k]):,} of its pushes were never resolved. Counting them as failures (the "
    f"triangles) brings its estimate back to the truth.\n\n"
    f"The same asymmetry explains the stacked shares above. Whichever style the agent "
    f"switches to looks good for a day, because its opens arrive before its failures. The "
    f"pooled posterior is tight, so all {USERS:,} users draw nearly the same answer, and the "
    f"agent moves the whole population from style to style. Delayed rewards are the rule "
    f"for push notifications. Remedies: learn only from resolved pushes (count an outcome "
    f"when it is known either way), or model the delay."))

# %% [markdown]
# **Take-aways.** Greedy exploits too early and can lock onto a poor style. Thompson sampling
# and LinUCB keep exploring in proportion to their uncertainty -- but a bandit is only as good
# as its bookkeeping: with delayed opens, successes arrive before failures, and the pooled
# Thompson agent chased its own freshest evidence. Learning from all users at once is what makes a
# few-percent open rate learnable at all (one user's pushes are far too few). The gain from
# style alone is modest here; timing and volume (tutorials 1 and 3) move opens more.
#
# ## Exercises
#
# 1. **Optimism.** Run greedy with the uniform prior `prior=(1, 1)` (every style starts at a
#    50 % open rate). What happens to its regret, and why?
# 2. **Continual vs per-episode, on one user at a time.** `evaluate_agents` resets a learning
#    agent once and lets it keep learning from user to user (`learning="continual"`, the
#    default for bandits), or resets it before every user (`learning="episode"`). Compare the
#    two for Thompson on `covercast/CoverStyle-v0` (every step is a push) with 400 users, with
#    a paired test (`covercast.experiments.stats.compare`). Can 400 users tell them apart?
# 3. **Exploration bonus.** LinUCB's `alpha` is the width of its bonus. Try `alpha=0` (a
#    greedy LinUCB) and `alpha=2`: which explores more, and which regret is lower here?
#
# ## Answers
#
# **1.** An optimistic prior makes greedy explore: each style starts at 50 %, and every
# failure lowers only the style that was tried, so greedy walks through all of them.

# %%
opt, opt_pushes = run(ThompsonStyleAgent(timing=StaticScheduler(), prior=(1, 1)),
                      deterministic=True)
display(Markdown(
    f"Greedy with `prior=(1, 1)`: regret **{int(best_cum[-1] - opt.sum()):+,}** opens "
    f"(with `(1, 19)`: {final['greedy']:+,}); pushes per style "
    + ", ".join(f"{k} {v:.0%}" for k, v in zip(STYLES, opt_pushes.sum(0) / opt_pushes.sum(),
                                                strict=True))
    + ". Optimism in "
    "the face of uncertainty is a way to explore -- but how long it explores depends on a "
    "prior chosen by hand."))

# %% [markdown]
# **2.** On `CoverStyle-v0` the agent decides only the style (`mode="style"`); each row is a
# user. With `learning="episode"` each user starts from the prior:

# %%
df = pd.concat([
    evaluate_agents({f"Thompson, {m}": ThompsonStyleAgent(mode="style", prior=(1, 19))},
                    "covercast/CoverStyle-v0", 400, seed=3, learning=m)
    for m in ("continual", "episode")])
summary = df.groupby("agent")[["opens", "ctr", "return"]].mean()
summary.round(4)

# %%
cont = df[df["agent"] == "Thompson, continual"]["ctr"].to_numpy()
first, last = cont[:200].mean(), cont[200:].mean()
diff = compare(df, baseline="Thompson, episode", paired=True, metrics=["ctr"]).iloc[0]
display(Markdown(
    f"The continual agent's CTR is {first:.2%} on its first 200 users and {last:.2%} on the "
    f"next 200; against the per-episode agent on the same users the paired CTR difference is "
    f"{diff['diff']:+.4f} (95 % CI [{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}]). On "
    f"400 users x {2 * 14} pushes the two cannot be told apart: at a few percent, style "
    f"differences take tens of thousands of pushes to show, which is why section 3 pooled "
    f"{USERS:,} users."))

# %% [markdown]
# **3.**

# %%
for alpha in (0.0, 2.0):
    o, p = run(LinUCBStyleAgent(timing=StaticScheduler(), alpha=alpha))
    print(f"alpha = {alpha}: regret {int(best_cum[-1] - o.sum()):+,} opens, pushes per style "
          f"{(p.sum(0) / p.sum()).round(3)}")
print(f"alpha = 0.5 (default): regret {final['LinUCB']:+,} opens")
