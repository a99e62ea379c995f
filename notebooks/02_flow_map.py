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
# # Where do orders flow?
#
# `omniroute map` replays the sample's day through the checkout router and writes a map that
# opens offline: stores coloured by how much of their capacity they used, flows from each store
# or DC to the destination city, unfilled demand on a 25 km grid. Hover a store for its figures.

# %%
import html
import json

from IPython.display import HTML, Image, display

from omniroute_cli import SAMPLE, omniroute, workdir

out = workdir("flow-map")
omniroute("map", "--data", SAMPLE, "--replay", "--html", out / "map.html", "--out", out / "layers", "--png", out / "map.png")
page = (out / "map.html").read_text()
print(f"map.html: {len(page) / 1e6:.1f} MB, no network needed")

# %% [markdown]
# The map, inline (the same page as the file; it needs nothing but this notebook):

# %%
display(HTML(f'<iframe srcdoc="{html.escape(page)}" style="width:100%;height:640px;border:0"></iframe>'))

# %% [markdown]
# For reports, the same view as a picture:

# %%
display(Image(filename=str(out / "map.png"), width=900))

# %% [markdown]
# ## The layers as data
# Every layer is also GeoJSON (and `kepler.json` loads them in kepler.gl). The busiest flows:

# %%
flows = json.loads((out / "layers" / "replay" / "flows.geojson").read_text())["features"]
busiest = sorted(flows, key=lambda f: -f["properties"]["orders"])[:10]
for f in busiest:
    p = f["properties"]
    print(f"{p['from']:>12} -> {p['to_city']:<16} {p['orders']:>5} orders, {p['mean_km']:.1f} km on average")
assert sum(f["properties"]["orders"] for f in flows) > 0
