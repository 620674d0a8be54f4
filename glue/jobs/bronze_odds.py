"""bronze.odds: every valid price of one sports day's historical odds
snapshots, one row per (snapshot, event, bookmaker, market, outcome)
(docs/glue.md#bronze-odds).

The raw object is a JSON array of The Odds API's historical snapshots,
prices in American odds. An event of the wrong shape, or without an id or
team names, is left out; a bookmaker listed twice keeps its first entry;
a market with a price that cannot be odds, an outcome name out of bounds,
or an h2h market without both teams is left out alone (a market is priced
as a whole).
"""

import math
import unicodedata

from betflow_glue import (
    Bad,
    is_number,
    list_or_null,
    opt_str,
    origin_of,
    parse_time,
    run_bronze,
    unix_time,
    utc,
)

TABLE = "bronze.odds"
MAX_ID = 128
MAX_NAME = 200
QUOTED_MARKETS = ("h2h", "spreads", "totals")


def req_str(v):
    if isinstance(v, str):
        return v
    raise Bad("not a string")


def opt_f64(v):
    if v is None:
        return None
    if is_number(v):
        return float(v)
    raise Bad("not a number")


def opt_time(v):
    """null or absent → None; text that parses, or Unix seconds; else refused."""
    if v is None:
        return None
    if isinstance(v, str):
        t = parse_time(v)
        if t is None:
            raise Bad("not a timestamp")
        return t
    if is_number(v):
        t = unix_time(float(v))
        if t is None:
            raise Bad("not a Unix time")
        return t
    raise Bad("not a time")


def req_time(v):
    t = opt_time(v)
    if t is None:
        raise Bad("missing timestamp")
    return t


def price(v):
    """A number, or numeric text; anything else is NaN (refused later, with
    its market only)."""
    if isinstance(v, bool) or v is None:
        return math.nan
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return math.nan
    return math.nan


def outcome(v):
    if not isinstance(v, dict):
        raise Bad("not an outcome")
    if "price" not in v:
        raise Bad("no price")
    opt_str(v.get("description"))
    return {"name": req_str(v.get("name")), "price": price(v["price"]), "point": opt_f64(v.get("point"))}


def market(v):
    if not isinstance(v, dict):
        raise Bad("not a market")
    return {
        "key": req_str(v.get("key")),
        "last_update": opt_time(v.get("last_update")),
        "outcomes": [outcome(o) for o in list_or_null(v.get("outcomes"))],
    }


def bookmaker(v):
    if not isinstance(v, dict):
        raise Bad("not a bookmaker")
    opt_str(v.get("title"))
    return {
        "key": req_str(v.get("key")),
        "last_update": opt_time(v.get("last_update")),
        "markets": [market(m) for m in list_or_null(v.get("markets"))],
    }


def event(v):
    if not isinstance(v, dict):
        raise Bad("not an event")
    opt_str(v.get("sport_key"))
    opt_str(v.get("sport_title"))
    return {
        "id": req_str(v.get("id")),
        "commence_time": req_time(v.get("commence_time")),
        "home_team": req_str(v.get("home_team")),
        "away_team": req_str(v.get("away_team")),
        "bookmakers": [bookmaker(b) for b in list_or_null(v.get("bookmakers"))],
    }


def checked(text, limit):
    """Within `limit` characters, no NUL, control or bidi override
    characters (not trimmed: ids are compared as sent)."""
    if len(text) > limit:
        return False
    for c in text:
        if 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 or unicodedata.category(c) == "Cc":
            return False
    return True


def side(e, name):
    if name == e["home_team"]:
        return "home"
    if name == e["away_team"]:
        return "away"
    lower = name.lower() if name.isascii() else "".join(c.lower() if c.isascii() else c for c in name)
    return {"draw": "draw", "tie": "draw", "over": "over", "under": "under"}.get(lower)


def price_ok(p):
    return abs(p) >= 100.0 and abs(p) < 100000.0


def market_ok(e, m):
    for o in m["outcomes"]:
        if not checked(o["name"], MAX_NAME) or not price_ok(o["price"]):
            return False
    if m["key"] == "h2h":
        n = len(m["outcomes"])
        sides = [side(e, o["name"]) for o in m["outcomes"]]
        if n != 2 and not (n == 3 and "draw" in sides):
            return False
        if "home" not in sides or "away" not in sides:
            return False
    return True


def screened(e):
    """The event with the bookmakers and markets that break the rules taken
    out; None when the event itself is refused."""
    if not e["id"].strip() or not checked(e["id"], MAX_ID):
        return None
    for team in (e["home_team"], e["away_team"]):
        if not team.strip() or not checked(team, MAX_NAME):
            return None
    books = []
    seen = []
    for b in e["bookmakers"]:
        first = b["key"] not in seen
        seen.append(b["key"])
        if not checked(b["key"], MAX_ID) or not first:
            continue
        books.append(dict(b, markets=[m for m in b["markets"] if market_ok(e, m)]))
    return dict(e, bookmakers=books)


def american_to_decimal(a):
    if not math.isfinite(a) or abs(a) < 100.0:
        return None
    return 1.0 + a / 100.0 if a > 0 else 1.0 + 100.0 / abs(a)


def snapshots(payload):
    """(snapshot time, event) of every valid event of every snapshot that
    reads; a snapshot without a readable timestamp or data list is left out."""
    for snap in payload if isinstance(payload, list) else []:
        if not isinstance(snap, dict):
            continue
        try:
            at = req_time(snap.get("timestamp"))
            opt_time(snap.get("previous_timestamp"))
            opt_time(snap.get("next_timestamp"))
        except Bad:
            continue
        data = snap.get("data")
        if not isinstance(data, list):
            continue
        for raw in data:
            try:
                e = screened(event(raw))
            except Bad:
                continue
            if e is not None:
                yield at, e


def rows(item, manifest):
    obj, payload = item
    day, origin = origin_of(obj, manifest)
    for at, e in snapshots(payload):
        for b in e["bookmakers"]:
            for m in b["markets"]:
                if m["key"] not in QUOTED_MARKETS:
                    continue
                for o in m["outcomes"]:
                    s = side(e, o["name"])
                    decimal = american_to_decimal(o["price"])
                    if s is None or decimal is None:
                        continue
                    last = m["last_update"] if m["last_update"] is not None else b["last_update"]
                    yield (
                        obj["sport"],
                        day,
                        utc(at),
                        e["id"],
                        utc(e["commence_time"]),
                        e["home_team"],
                        e["away_team"],
                        b["key"],
                        m["key"],
                        s,
                        o["name"],
                        o["price"],
                        decimal,
                        o["point"],
                        None if last is None else utc(last),
                    ) + origin


if __name__ == "__main__":
    run_bronze(TABLE, rows)
