# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # What if? Three scenarios of Singles' Day, compared
#
# Each scenario is a TOML file (see `scenarios/README.md`): the bundled sample as it is, 30% of
# Shanghai's stores dropping out with a shorter ship radius, and a demand surge with one DC
# closed. `omniroute simulate` replays every order of the day through the checkout router on
# each, in parallel, and compares them with the first.

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, display

from omniroute_cli import SAMPLE, SCENARIOS, omniroute, read_json, workdir

out = workdir("what-if")
names = ["baseline", "shanghai-drop", "surge"]
print(omniroute("simulate", *[SCENARIOS / f"{n}.toml" for n in names], "--out", out / "sim"))

# %% [markdown]
# ## The figures side by side
# `comparison.json` holds every metric of every scenario and its change from the baseline.

# %%
comparison = read_json(out / "sim" / "comparison.json")
rows = [dict(scenario=s, **r) for s, metrics in comparison["scenarios"].items() for r in metrics]
table = pd.DataFrame(rows).pivot(index="metric", columns="scenario", values="value")[names]
assert set(table.columns) == set(names)
assert (table.loc["orders"] > 0).all()
table

# %%
shown = ["fill rate, % of orders", "from DCs, % of orders", "distance mean, km per shipment", "stores at capacity"]
fig, axes = plt.subplots(1, len(shown), figsize=(16, 3.5))
for ax, metric in zip(axes, shown):
    table.loc[metric].plot.bar(ax=ax, color=["#1f77b4", "#ff7f0e", "#2ca02c"])
    ax.set_title(metric, fontsize=10)
    ax.tick_params(axis="x", rotation=0)
fig.tight_layout()

# %% [markdown]
# ## Hour by hour
# Each scenario's `report.json` has an hourly series: when does the fill rate drop, when do
# stores saturate?

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(14, 3.5))
for n in names:
    hourly = pd.DataFrame(read_json(out / "sim" / n / "report.json")["kpis"]["hourly"])
    a.plot(hourly["hour"], hourly["fill_rate_pct"], label=n)
    b.plot(hourly["hour"], hourly["stores_saturated"].cumsum(), label=n)
a.set(title="fill rate, % of orders", xlabel="hour")
b.set(title="stores at capacity so far", xlabel="hour")
a.legend()
fig.tight_layout()

# %% [markdown]
# ## The same comparison as report pictures
# `omniroute map --simulation` draws each scenario; `--png` writes the map of one and the KPI
# charts of all.

# %%
files = omniroute("map", "--data", SAMPLE, "--simulation", out / "sim", "--png", out / "map.png", "--view", "shanghai-drop").split()
assert len(files) == 4
display(Image(filename=str(out / "map.comparison.png"), width=900))
