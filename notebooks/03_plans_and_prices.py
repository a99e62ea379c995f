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
# # Greedy against LP, and where one more unit saves most
#
# `omniroute optimize` plans the whole wave of the sample's orders at least cost, greedily and
# with the LP. The LP also gives shadow prices: how much one more unit of a store's stock, or
# one more order of its daily capacity, would save.

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, display

from omniroute_cli import SAMPLE, omniroute, read_json, workdir

out = workdir("plans")
omniroute("optimize", "--data", SAMPLE, "--solver", "greedy", "--out", out / "greedy.json", "--json")
omniroute("optimize", "--data", SAMPLE, "--solver", "lp", "--out", out / "lp.json", "--json")
greedy, lp = read_json(out / "greedy.json"), read_json(out / "lp.json")
kpis = pd.DataFrame({"greedy": greedy["kpis"], "lp": lp["kpis"]}).drop(index=["utilization"])
kpis

# %%
assert lp["kpis"]["cost"] <= greedy["kpis"]["cost"] + 1e-6, "the LP plan costs no more than greedy"
saving = greedy["kpis"]["cost"] - lp["kpis"]["cost"]
print(f"The LP saves {saving:,.0f} ({100 * saving / greedy['kpis']['cost']:.2f}% of the greedy plan's cost)")
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for ax, k in zip(axes, ["cost", "total_km", "dc_share"]):
    kpis.loc[k].plot.bar(ax=ax, color=["#ff7f0e", "#1f77b4"])
    ax.set_title(k)
    ax.tick_params(axis="x", rotation=0)
fig.tight_layout()

# %% [markdown]
# ## Shadow prices
# Stock cells and store capacities whose one more unit saves most (money units per unit).

# %%
prices = lp.get("shadow_prices") or {"stock": [], "capacity": []}
stock = pd.DataFrame(prices["stock"])
capacity = pd.DataFrame(prices["capacity"])
display(stock.head(10))
display(capacity.head(10))
if len(stock):
    stock.head(10).plot.barh(x="store_id", y="saving_per_unit", legend=False, title="saving per extra unit of stock")

# %% [markdown]
# ## The two plans on one map
# The second view is compared with the first: blue where the LP sends more orders than greedy,
# red where fewer.

# %%
omniroute("map", "--data", SAMPLE, "--plan", f"greedy={out / 'greedy.json'}", "--plan", f"lp={out / 'lp.json'}", "--html", out / "plans.html", "--png", out / "plans.png", "--view", "lp")
display(Image(filename=str(out / "plans.distance.png"), width=800))
