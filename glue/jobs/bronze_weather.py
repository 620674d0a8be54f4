"""bronze.weather: the hourly Open-Meteo observations of one sports day's
raw weather objects, one row per venue and hour, in SI units.

Rules (docs/glue.md#bronze-weather), as the polars engine applies them:
an item whose `venue` or `response` does not read is left out whole; hours
whose time does not parse are skipped; temperature in °F, wind in km/h
(Open-Meteo's default), mph or knots and precipitation in inches are
converted; a multi-model response uses the model with the most values.
"""

from betflow_glue import (
    is_number,
    origin_of,
    parse_time,
    run_bronze,
    shift,
    utc,
)

TABLE = "bronze.weather"


def series(response, names):
    hourly = response["hourly"]
    key = next((n for n in names if n in hourly), None)
    if key is None:
        models = [k[len("temperature_2m_"):] for k in sorted(hourly) if k.startswith("temperature_2m_")]
        best, best_filled = None, -1
        for n in names:
            for m in models:
                k = f"{n}_{m}"
                if k in hourly:
                    filled = sum(1 for v in hourly[k] if v is not None)
                    if best is None or filled > best_filled:
                        best, best_filled = k, filled
        key = best
    if key is None:
        return None
    return hourly[key], response.get("hourly_units", {}).get(key)


def valid_response(r):
    """What the Rust decoder accepts as an Open-Meteo body."""
    if not isinstance(r, dict):
        return False
    for k in ("latitude", "longitude"):
        if r.get(k) is not None and not is_number(r[k]):
            return False
    if r.get("timezone") is not None and not isinstance(r["timezone"], str):
        return False
    off = r.get("utc_offset_seconds", 0)
    if not isinstance(off, int) or isinstance(off, bool):
        return False
    units = r.get("hourly_units", {})
    if not isinstance(units, dict) or not all(isinstance(v, str) for v in units.values()):
        return False
    hourly = r.get("hourly")
    if hourly is None:
        return True
    if not isinstance(hourly, dict):
        return False
    if not isinstance(hourly.get("time", []), list) or not all(isinstance(t, str) for t in hourly.get("time", [])):
        return False
    for k, v in hourly.items():
        if k == "time":
            continue
        if not isinstance(v, list) or not all(x is None or is_number(x) for x in v):
            return False
    return True


def valid_venue(v):
    return (
        isinstance(v, dict)
        and isinstance(v.get("venue_id"), str)
        and (v.get("name") is None or isinstance(v["name"], str))
        and is_number(v.get("lat"))
        and is_number(v.get("lon"))
        and isinstance(v.get("game_ids"), list)
        and all(isinstance(g, str) for g in v["game_ids"])
    )


def observations(response):
    if response.get("hourly") is None:
        return []
    offset = response.get("utc_offset_seconds", 0)
    temperature = series(response, ["temperature_2m"])
    precipitation = series(response, ["precipitation"])
    wind = series(response, ["wind_speed_10m", "windspeed_10m"])
    humidity = series(response, ["relative_humidity_2m", "relativehumidity_2m"])

    def at(s, i):
        if s is None or i >= len(s[0]) or s[0][i] is None:
            return None
        return float(s[0][i]), s[1]

    out = []
    for i, t in enumerate(response["hourly"].get("time", [])):
        local = parse_time(t)
        if local is None:
            continue
        temp = at(temperature, i)
        if temp is not None:
            temp = (temp[0] - 32.0) * 5.0 / 9.0 if temp[1] == "°F" else temp[0]
        w = at(wind, i)
        if w is not None:
            w = {"m/s": w[0], "mp/h": w[0] * 0.44704, "mph": w[0] * 0.44704, "kn": w[0] * 0.514444}.get(
                w[1], w[0] / 3.6
            )
        p = at(precipitation, i)
        if p is not None:
            p = p[0] * 25.4 if p[1] == "inch" else p[0]
        h = at(humidity, i)
        out.append((shift(local, offset), temp, w, p, None if h is None else h[0]))
    return out


def rows(item, manifest):
    obj, payload = item
    day, origin = origin_of(obj, manifest)
    for entry in payload if isinstance(payload, list) else []:
        if not isinstance(entry, dict):
            continue
        venue, response = entry.get("venue"), entry.get("response")
        if not valid_venue(venue) or not valid_response(response):
            continue
        for observed_at, temp, wind, precip, humidity in observations(response):
            yield (
                obj["sport"],
                day,
                venue["venue_id"],
                float(venue["lat"]),
                float(venue["lon"]),
                utc(observed_at),
                temp,
                wind,
                None,
                precip,
                None if humidity is None else float(humidity),
            ) + origin


if __name__ == "__main__":
    run_bronze(TABLE, rows)
