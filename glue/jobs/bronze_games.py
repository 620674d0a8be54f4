"""bronze.games: the valid games of one sports day's ESPN scoreboards, one
row per game (docs/glue.md#bronze-games).

The rules are those the `validate` task applied before (docs/quality.md):
a field of the wrong JSON type, or a game breaking a rule (no id, no home
or away side, no status state, an unreadable start time, a score that is
not a whole number once the game started, a team id or name out of bounds)
leaves that game out alone.
"""

import math
import unicodedata

from betflow_glue import (
    Bad,
    is_int,
    list_or_null,
    opt_str,
    origin_of,
    parse_time,
    run_bronze,
    utc,
)

TABLE = "bronze.games"
MAX_ID = 128
MAX_NAME = 200
U32 = 2**32 - 1
I32 = (-(2**31), 2**31 - 1)


# --- JSON types as the Rust decoder takes them -------------------------------


def opt_bool(v):
    if v is None or isinstance(v, bool):
        return v
    raise Bad("not a boolean")


def opt_int(v, lo, hi):
    if v is None:
        return None
    if is_int(v) and lo <= v <= hi:
        return v
    raise Bad("not an integer in range")


def lenient_str(v):
    """A string, number or boolean as text; an object's displayValue or
    value; else nothing."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_int(v):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else None
    if isinstance(v, dict):
        inner = v.get("displayValue", v.get("value"))
        return None if inner is None else lenient_str(inner)
    return None


def lenient_f64(v):
    if v is None:
        return None
    if isinstance(v, bool):
        raise Bad("not a number")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        if not v.strip():
            return None
        try:
            return float(v.strip())
        except ValueError:
            raise Bad("not a number")
    raise Bad("not a number")


def opt_obj(v):
    if v is None or isinstance(v, dict):
        return v
    raise Bad("not an object")


# --- the structs --------------------------------------------------------------


def season(v):
    v = opt_obj(v)
    if v is None:
        return None
    return {
        "year": opt_int(v.get("year"), *I32),
        "type": opt_int(v.get("type"), *I32),
        "slug": opt_str(v.get("slug")),
    }


def week(v):
    """A bare number, or {number}; None when absent."""
    if v is None:
        return None
    if is_int(v) and 0 <= v <= U32:
        return {"number": v}
    if isinstance(v, dict):
        return {"number": opt_int(v.get("number"), 0, U32)}
    raise Bad("not a week")


def status_type(v):
    v = opt_obj(v)
    if v is None:
        return None
    out = {k: opt_str(v.get(k)) for k in ("name", "state", "description", "detail", "shortDetail")}
    opt_bool(v.get("completed"))
    return out


def status(v):
    v = opt_obj(v)
    if v is None:
        return None
    lenient_f64(v.get("clock"))
    return {
        "displayClock": opt_str(v.get("displayClock")),
        "period": opt_int(v.get("period"), 0, U32),
        "type": status_type(v.get("type")),
    }


def venue(v):
    v = opt_obj(v)
    if v is None:
        return None
    address = opt_obj(v.get("address"))
    if address is not None:
        address = {k: opt_str(address.get(k)) for k in ("city", "state", "country")}
    lenient_f64(v.get("capacity"))
    return {
        "id": lenient_str(v.get("id")) if v.get("id") is not None else None,
        "fullName": opt_str(v.get("fullName")),
        "address": address,
        "indoor": opt_bool(v.get("indoor")),
    }


def linescore(v):
    if not isinstance(v, dict):
        raise Bad("not a line score")
    opt_int(v.get("period"), 0, U32)
    return {
        "value": lenient_f64(v.get("value")),
        "displayValue": lenient_str(v.get("displayValue")) if v.get("displayValue") is not None else None,
    }


def team(v):
    v = opt_obj(v)
    if v is None:
        return None
    out = {k: opt_str(v.get(k)) for k in ("name", "displayName", "abbreviation", "location")}
    out["id"] = lenient_str(v.get("id")) if v.get("id") is not None else None
    return out


def competitor(v):
    if not isinstance(v, dict):
        raise Bad("not a competitor")
    opt_bool(v.get("winner"))
    return {
        "id": lenient_str(v.get("id")) if v.get("id") is not None else None,
        "homeAway": opt_str(v.get("homeAway")),
        "team": team(v.get("team")),
        "score": lenient_str(v.get("score")) if v.get("score") is not None else None,
        "linescores": [linescore(x) for x in list_or_null(v.get("linescores"))],
    }


def competition(v):
    if not isinstance(v, dict):
        raise Bad("not a competition")
    lenient_str(v.get("id"))
    return {
        "date": opt_str(v.get("date")),
        "attendance": lenient_f64(v.get("attendance")),
        "neutralSite": opt_bool(v.get("neutralSite")),
        "venue": venue(v.get("venue")),
        "competitors": [competitor(x) for x in list_or_null(v.get("competitors"))],
        "status": status(v.get("status")),
    }


def event(v):
    if not isinstance(v, dict):
        raise Bad("not an event")
    opt_str(v.get("name"))
    opt_str(v.get("shortName"))
    return {
        "id": lenient_str(v.get("id")) if v.get("id") is not None else None,
        "date": opt_str(v.get("date")),
        "season": season(v.get("season")),
        "week": week(v.get("week")),
        "competitions": [competition(x) for x in list_or_null(v.get("competitions"))],
        "status": status(v.get("status")),
    }


# --- the rules ------------------------------------------------------------------


def bounded(text, limit):
    """Trimmed, tabs and newlines as spaces; NUL, bidi overrides, other
    control characters and over-long text are refused."""
    t = text.strip()
    if len(t) > limit:
        raise Bad("too long")
    out = []
    for c in t:
        if c == "\0":
            raise Bad("NUL")
        if c in "\t\n\r":
            out.append(" ")
        elif 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069:
            raise Bad("bidi")
        elif unicodedata.category(c) == "Cc":
            raise Bad("control")
        else:
            out.append(c)
    return "".join(out)


def non_empty(s):
    if s is None:
        return None
    s = s.strip()
    return s or None


def whole(v):
    if v is None or not math.isfinite(v) or v < 0 or v != int(v) or v > U32:
        return None
    return int(v)


def points(ls):
    v = ls["value"]
    if v is None:
        text = ls["displayValue"]
        if text is None:
            return None
        try:
            v = float(text.strip())
        except ValueError:
            return None
    return whole(v)


def team_line(c, state):
    t = c["team"]
    if t is None:
        raise Bad("no team")
    team_id = non_empty(t["id"] if t["id"] is not None else c["id"])
    if team_id is None:
        raise Bad("no team id")
    team_id = bounded(team_id, MAX_ID)
    name = non_empty(t["displayName"] if t["displayName"] is not None else t["name"])
    if name is None:
        raise Bad("no team name")
    name = bounded(name, MAX_NAME)
    score = None
    text = c["score"].strip() if c["score"] is not None else ""
    if text:
        try:
            score = whole(float(text))
        except ValueError:
            score = None
        if score is None:
            raise Bad("score")
    if state != "pre" and score is None:
        raise Bad("no score")
    lines = []
    for ls in c["linescores"]:
        p = points(ls)
        if p is None:
            raise Bad("line score")
        lines.append(p)
    abbr = t["abbreviation"]
    if abbr is not None:
        try:
            abbr = bounded(abbr, MAX_ID)
        except Bad:
            abbr = None
    return {
        "id": team_id,
        "name": name,
        "abbr": abbr,
        "score": None if state == "pre" else score,
        "lines": ",".join(str(p) for p in lines),
    }


def venue_record(v):
    if v is None:
        return None
    vid = non_empty(v["id"])
    if vid is None:
        return None
    try:
        vid = bounded(vid, MAX_ID)
    except Bad:
        return None

    def clean(s):
        if s is None:
            return None
        try:
            return bounded(s, MAX_NAME)
        except Bad:
            return None

    a = v["address"] or {}
    return {
        "id": vid,
        "name": clean(v["fullName"]),
        "city": clean(a.get("city")),
        "state": clean(a.get("state")),
        "indoor": v["indoor"],
    }


def game(ev, ctx):
    game_id = non_empty(ev["id"])
    if game_id is None:
        raise Bad("no id")
    game_id = bounded(game_id, MAX_ID)
    if not ev["competitions"]:
        raise Bad("no competitions")
    comp = ev["competitions"][0]
    if not comp["competitors"]:
        raise Bad("no competitors")

    def side(which):
        for c in comp["competitors"]:
            if c["homeAway"] == which:
                return c
        raise Bad("no " + which)

    st = comp["status"] if comp["status"] is not None else ev["status"]
    if st is None or st["type"] is None:
        raise Bad("no status")
    state = st["type"]["state"] or ""
    if state not in ("pre", "in", "post"):
        raise Bad("state")
    date_text = comp["date"] if comp["date"] is not None else ev["date"]
    if date_text is None:
        raise Bad("no date")
    start = parse_time(date_text)
    if start is None:
        raise Bad("date")
    home, away = side("home"), side("away")
    home, away = team_line(home, state), team_line(away, state)
    season_ = ev["season"] if ev["season"] is not None else ctx["season"]
    wk = ev["week"]["number"] if ev["week"] is not None else None
    if wk is None:
        wk = ctx["week"]
    attendance = whole(comp["attendance"])
    if attendance is not None and attendance <= 0:
        attendance = None
    v = venue_record(comp["venue"])
    kind = st["type"]
    return {
        "game_id": game_id,
        "start": start,
        "season": season_["year"] if season_ else None,
        "season_type": season_["type"] if season_ else None,
        "week": wk,
        "state": state,
        "status_name": kind["name"],
        "status_detail": kind["detail"] if kind["detail"] is not None else kind["description"],
        "period": st["period"] or 0,
        "home": home,
        "away": away,
        "venue": v,
        "attendance": attendance,
        "neutral": bool(comp["neutralSite"]),
    }


def games(payload):
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        return []
    ctx = {"season": None, "week": None}
    try:
        ctx["season"] = season(payload.get("season"))
    except Bad:
        pass
    try:
        w = week(payload.get("week"))
        ctx["week"] = w["number"] if w else None
    except Bad:
        pass
    out = []
    for raw in payload["events"]:
        try:
            out.append(game(event(raw), ctx))
        except Bad:
            continue
    return out


def rows(item, manifest):
    obj, payload = item
    day, origin = origin_of(obj, manifest)
    for g in games(payload):
        h, a, v = g["home"], g["away"], g["venue"] or {}
        yield (
            obj["sport"],
            day,
            g["game_id"],
            utc(g["start"]),
            g["season"],
            g["season_type"],
            g["week"],
            g["state"],
            g["status_name"],
            g["status_detail"],
            g["period"],
            h["id"],
            h["name"],
            h["abbr"],
            h["score"],
            h["lines"],
            a["id"],
            a["name"],
            a["abbr"],
            a["score"],
            a["lines"],
            v.get("id"),
            v.get("name"),
            v.get("city"),
            v.get("state"),
            v.get("indoor"),
            g["attendance"],
            g["neutral"],
        ) + origin


if __name__ == "__main__":
    run_bronze(TABLE, rows)
